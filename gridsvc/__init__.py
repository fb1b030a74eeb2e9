"""gridsvc: geospatial backend for community grid management (网格化管理)."""
