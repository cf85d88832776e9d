"""usdposer's rules as UsdValidation validators named ``usdposer:<Rule>`` (OpenUSD's pxr.UsdValidation): the plugin's tasks.

Two ways in, both registering the same stage validators:
1. in-process: an explicit :func:`register_validators` call registers the plugin metadata in
   ``schemas/usdPoserValidators/resources/plugInfo.json`` and the task functions (``validate_stage`` makes it);
2. as a USD plugin: with ``PXR_PLUGINPATH_NAME`` pointing at the installed ``usdposer/schemas`` folder, a stock USD
   process sees the metadata before anything is imported, and its first ``GetOrLoadValidatorsByName`` imports the
   plugin's ``Name``, the ``usdposer`` package, whose root calls :func:`register_validators` when (and only when)
   ``pxr.UsdValidation`` is already loaded, i.e. when USD is loading it as this plugin.

Nothing else registers them: importing ``usdposer.io`` (or any usdposer module in a process that has not loaded
``pxr.UsdValidation``) has no side effect on USD's validators.

Each validator reads the stage once per stage (shared by every usdposer validator in one ``ValidationContext``), runs
its rule and returns one ``ValidationError`` per finding, named by the finding's error name: failed findings are
Errors, warnings are Warns.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path

from pxr import Plug, Usd, UsdValidation
from usdposer.schemas import PLUGIN_DIR

# The plugin's Name: UsdValidation names every validator "<plugin name>:<key>" (so usdposer:<Rule>), and a python
# plugin's Name is also the module USD imports to load it: the usdposer package root, which then calls
# register_validators (usdposer/__init__.py).
PLUGIN_NAME = "usdposer"
PLUGIN_INFO = PLUGIN_DIR / "usdPoserValidators" / "resources" / "plugInfo.json"
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_registered = False


def plugin_info(rules: list | None = None) -> dict:
    """The plugInfo.json contents for ``rules`` (default: the registry); tests keep the shipped file in sync."""
    if rules is None:
        from usdposer.validate import find_rules

        rules = [type(r) for r in find_rules()]
    validators: dict = {"keywords": ["usdposer"]}
    for cls in rules:
        validators[cls.name] = {"doc": cls.describe(), "keywords": ["usdposer", "UsdSkel"]}
    return {"Plugins": [{"Type": "python", "Name": PLUGIN_NAME, "Root": ".", "LibraryPath": "", "ResourcePath": ".",
                         "Info": {"Validators": validators}}]}


def validator_names() -> list[str]:
    info = json.loads(PLUGIN_INFO.read_text())
    return [f"{PLUGIN_NAME}:{k}" for k in info["Plugins"][0]["Info"]["Validators"] if k != "keywords"]


def _findings(stage: Usd.Stage) -> list:
    """All usdposer findings of a stage (every rule, computed once per stage object)."""
    key = stage.GetRootLayer()
    hit = _cache.get(key)
    if hit is not None and hit[0] == id(stage):
        return hit[1]
    from usdposer.io.read_skel import read_stage
    from usdposer.validate import CheckOptions, check_asset, find_rules

    asset = read_stage(stage, stage.GetRootLayer().identifier, strict=False)
    findings = check_asset(asset, stage.GetRootLayer().identifier, find_rules(), CheckOptions())
    _cache[key] = (id(stage), findings)
    return findings


def _task(rule: str):
    def validate(stage: Usd.Stage, time_range=None) -> list:
        errors = []
        for f in _findings(stage):
            if f.rule != rule:
                continue
            kind = UsdValidation.ValidationErrorType.Warn if f.severity == "warning" else UsdValidation.ValidationErrorType.Error
            path = f.prim if f.prim.startswith("/") and stage.GetPrimAtPath(f.prim) else "/"
            site = UsdValidation.ValidationErrorSite(stage, path)
            errors.append(UsdValidation.ValidationError(f.code, kind, [site], f.message))
        return errors

    validate.__name__ = f"validate_{rule}"
    return validate


def register_validators() -> bool:
    """Register every ``usdposer:<Rule>`` stage validator (idempotent); True when they are known to USD."""
    global _registered
    if _registered:
        return True
    if Plug.Registry().GetPluginWithName(PLUGIN_NAME) is None:
        Plug.Registry().RegisterPlugins(str(PLUGIN_INFO.parent))
    reg = UsdValidation.ValidationRegistry()
    for name in validator_names():
        if not reg.HasValidator(name):
            reg.RegisterPluginStageValidator(name, _task(name.split(":", 1)[1]))
    _registered = True
    return all(reg.HasValidator(n) for n in validator_names())


def validate_stage(path: str | Path, names: list[str] | None = None) -> list:
    """Run usdposer's validators (or ``names``) on a stage through UsdValidation; returns its ValidationErrors."""
    register_validators()
    stage = Usd.Stage.Open(str(path))
    reg = UsdValidation.ValidationRegistry()
    validators = reg.GetOrLoadValidatorsByName(names or validator_names())
    return list(UsdValidation.ValidationContext(validators).Validate(stage))
