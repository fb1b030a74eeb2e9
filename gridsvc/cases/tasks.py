"""Background work for cases (procrastinate): deadlines, cards and escalation."""
