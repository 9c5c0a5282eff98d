"""Shipped catalogs (YAML data), loaded with ``catalog_file = "builtin:<name>"``."""
