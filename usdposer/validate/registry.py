"""Findings, rules and the rule registry (OpenUSD's compliance checker: failed checks, errors and warnings apart).

Severities:
    failed   the asset breaks the rule (``usdposer check`` exits 1);
    error    the check could not be made, e.g. the file cannot be read (exit 2);
    warning  worth a look; fails only with ``--strict``.
A rule is a class with a ``name`` (``usdposer:<name>`` in UsdValidation), the error names it can report
(``codes``), a ``describe()`` and either ``check(file)`` (asset rules) or ``measure(chunk)`` + ``judge(clip,
measures)`` (per-frame rules, fed chunk by chunk so that long clips never hold every skinned frame at once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

from usdposer.errors import InputError

if TYPE_CHECKING:
    from usdposer.validate.context import Chunk, ClipContext, FileContext

SEVERITIES = ("failed", "error", "warning")


@dataclass(frozen=True)
class Finding:
    """One thing a rule found. ``frame`` is a time code (the worst frame of a run), ``frames`` the first and last
    time codes of the run it stands for; ``value`` the measured quantity in the unit the message names."""

    rule: str
    code: str
    severity: str
    message: str
    file: str = ""
    prim: str = ""
    joint: str = ""
    frame: float | None = None
    frames: tuple[float, float] | None = None
    value: float | None = None
    waived: str = ""  # the reason, when a waiver file accepts this finding (it then no longer counts)

    @property
    def id(self) -> str:
        """``Rule.ErrorName``, as UsdValidation names it (``usdposer:`` prefix added there)."""
        return f"{self.rule}.{self.code}"

    def to_dict(self) -> dict:
        return {"id": self.id, **asdict(self)}


class Rule:
    """Base of every rule. Subclasses set the class attributes and implement one of the two protocols."""

    name: ClassVar[str] = ""
    severity: ClassVar[str] = "failed"  # the default severity of its findings
    scope: ClassVar[str] = "file"  # "file": check(file); "clip": measure(chunk) then judge(clip, measures)
    codes: ClassVar[dict[str, str]] = {}  # error name -> what it means
    needs_mesh: ClassVar[bool] = False

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or cls.name).strip().splitlines()[0]

    def check(self, file: FileContext) -> list[Finding]:  # scope "file"
        raise NotImplementedError

    def measure(self, clip: ClipContext, chunk: Chunk) -> dict:  # scope "clip": per-chunk arrays, concatenated
        raise NotImplementedError

    def judge(self, clip: ClipContext, measures: dict) -> list[Finding]:  # scope "clip"
        raise NotImplementedError


RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator: add a rule to the registry under its ``name`` (default: the class name)."""
    if "name" not in cls.__dict__:
        cls.name = cls.__name__
    assert cls.name and cls.name not in RULES, f"rule name {cls.name!r} missing or taken"
    assert cls.severity in SEVERITIES and cls.scope in ("file", "clip")
    RULES[cls.name] = cls
    return cls


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").removeprefix("usdposer:")


def find_rules(names: list[str] | None = None) -> list[Rule]:
    """Instances of the named rules (case, dashes and a ``usdposer:`` prefix ignored), or of every rule."""
    from usdposer.validate import rules  # noqa: F401  (fills the registry)

    if not names:
        return [cls() for cls in RULES.values()]
    index = {_key(n): cls for n, cls in RULES.items()}
    out = []
    for n in names:
        cls = index.get(_key(n))
        if cls is None:
            raise InputError(f"unknown rule {n!r}; known rules: {', '.join(RULES)} (see `usdposer check --list-rules`)")
        out.append(cls())
    return out
