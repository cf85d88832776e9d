"""Validators: rules -> findings (``usdposer check``), and the energies that guide poses away from what they flag.

``find_rules`` / ``RULES`` is the registry, ``check_paths`` runs it over files; see ``registry`` for severities and
``usdposer.schemas.validators`` for the same rules as UsdValidation validators (the USD plugin).
"""

from usdposer.validate.context import CheckOptions
from usdposer.validate.engine import CheckReport, FileResult, check_asset, check_paths
from usdposer.validate.registry import RULES, SEVERITIES, Finding, Rule, find_rules, register

__all__ = ["RULES", "SEVERITIES", "CheckOptions", "CheckReport", "FileResult", "Finding", "Rule", "check_asset",
           "check_paths", "find_rules", "register"]
