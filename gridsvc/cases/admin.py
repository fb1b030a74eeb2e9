"""Admin for category rules, time limits, flag rules and outside departments (规则维护).

Changes are recorded in the rules history (audit log); a time-limit change makes the worker
recompute the open cases' deadlines of that category (a deadline set by a person is kept)."""

from __future__ import annotations

from django.contrib import admin

from gridsvc.supervision.rules_admin import RuleAdmin

from .models import Category, Department, FlagRule, TimeLimit


@admin.register(Category)
class CategoryAdmin(RuleAdmin):
    list_display = ["code", "name", "kind", "parent", "start_level", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["code", "name"]


@admin.register(TimeLimit)
class TimeLimitAdmin(RuleAdmin):
    list_display = ["category", "stage", "level", "amount", "unit"]
    list_filter = ["stage", "unit", "level"]
    search_fields = ["category__code", "category__name"]
    list_select_related = ["category"]


@admin.register(FlagRule)
class FlagRuleAdmin(RuleAdmin):
    list_display = ["flag", "min_level", "notify"]


@admin.register(Department)
class DepartmentAdmin(RuleAdmin):
    list_display = ["code", "name", "street", "contact"]
    search_fields = ["code", "name"]
