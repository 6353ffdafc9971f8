"""Design lint: rules of thumb (docs/rules.md) checked against a config and its data (`kerasflow lint CONFIG`)."""

from kerasflow.lint.profile import DataProfile, profile_frame, profile_source
from kerasflow.lint.rules import RULES, DesignLintError, Finding, LintReport, lint_config

__all__ = ["DataProfile", "DesignLintError", "Finding", "LintReport", "RULES", "lint_config", "profile_frame", "profile_source"]
