"""Classify DICOM series (T1, DWI, Dixon water/fat, ignored, unknown) and read b-values, by editable rules.

The rules live in a YAML file (the packaged ``rules.yaml`` by default; its comments document the
format). A series is described by its modality, texts (``SeriesDescription``, ``ProtocolName``,
``SequenceName``), ``ImageType`` words and whether a b-value was found; the first matching rule
decides. Texts are matched as written and once more with ``_`` read as a space, so word-boundary
patterns (``\bt1``) find the words of scanner names such as ``WB_T1_st1`` or ``Dixon_noBH_W``. A series no rule matches is ``unknown`` — listed in the QC table, never an error.

b-values (s/mm²) are read from the standard ``DiffusionBValue`` (0018,9087) or, when absent,
from the common vendor tags: Siemens (0019,100C), GE (0043,1039, first value, 10⁹ offset
removed), Philips (2001,1003), or Siemens' ``SequenceName`` (``*ep_b1000t``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


from sapkit.errors import ConfigError
from sapkit.io.yaml_io import load_yaml_file

__all__ = ["Rule", "BValueTag", "Rules", "SEQUENCES", "default_rules_path", "load_rules"]

#: What a rule may assign: the kit's channels, the Dixon water and fat images carried beside the T1
#: (:mod:`sapkit.preprocessing.dixon`), or ``ignore``. A rules file naming only some of them still loads.
SEQUENCES = ("t1", "dwi", "water", "fat", "ignore")
_RULE_KEYS = {"name", "sequence", "description", "description_none", "image_type_any", "image_type_none", "has_b_value"}


@dataclass(frozen=True)
class Rule:
    """One classification rule (see ``rules.yaml``); empty conditions always hold."""

    name: str
    sequence: str
    description: tuple[re.Pattern, ...] = ()
    description_none: tuple[re.Pattern, ...] = ()
    image_type_any: tuple[str, ...] = ()
    image_type_none: tuple[str, ...] = ()
    has_b_value: bool | None = None

    def matches(self, texts: tuple[str, ...], image_type: tuple[str, ...], has_b_value: bool) -> bool:
        """True when every condition of the rule holds for the series."""
        words = {w.upper() for w in image_type}
        if self.description and not any(p.search(t) for p in self.description for t in texts):
            return False
        if any(p.search(t) for p in self.description_none for t in texts):
            return False
        if self.image_type_any and not words & set(self.image_type_any):
            return False
        if words & set(self.image_type_none):
            return False
        return self.has_b_value is None or self.has_b_value == has_b_value


@dataclass(frozen=True)
class BValueTag:
    """Where a b-value is read: a DICOM ``tag`` (group, element) or a ``sequence_name`` pattern."""

    name: str
    tag: tuple[int, int] | None = None
    first_value: bool = False
    modulo: float | None = None
    sequence_name: re.Pattern | None = None


def _number(value: Any) -> float | None:
    """A b-value from a DICOM element value (IS/DS/FL/FD, multi-valued, or raw bytes of an UN element)."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).rstrip(b"\x00 ").decode("ascii", errors="replace")
        if text and all(c in "0123456789+-.eE\\ " for c in text):
            value = text.split("\\")
        elif len(value) in (4, 8):
            return float(struct.unpack("<f" if len(value) == 4 else "<d", bytes(value))[0])
        else:
            return None
    if isinstance(value, str):
        value = value.split("\\")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = list(value)[0] if len(value) else None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Rules:
    """Loaded classification rules; ``source`` is the YAML file they came from."""

    modalities: tuple[str, ...]
    rules: tuple[Rule, ...]
    b_value_tags: tuple[BValueTag, ...]
    source: str

    def classify(self, *, modality: str, texts: tuple[str, ...], image_type: tuple[str, ...],
                 has_b_value: bool) -> tuple[str, str]:
        """``(sequence, reason)``: a :data:`SEQUENCES` name and the rule name, or ``unused``/``unknown``.

        Examples
        --------
        >>> rules = load_rules()
        >>> rules.classify(modality="MR", texts=("WB T1 station 2",), image_type=("ORIGINAL",), has_b_value=False)
        ('t1', 'rule: T1-weighted')
        >>> rules.classify(modality="CT", texts=("Routine Brain",), image_type=(), has_b_value=False)[0]
        'unused'
        """
        given, texts = texts, _with_spaces(texts)
        if modality.upper() not in self.modalities:
            return "unused", f"modality {modality or '(none)'} is not one of {list(self.modalities)}"
        for rule in self.rules:
            if rule.matches(texts, image_type, has_b_value):
                return rule.sequence, f"rule: {rule.name}"
        shown = " / ".join(t for t in given if t) or "(no description)"
        words = "\\".join(image_type) or "(none)"
        return "unknown", (f"no rule matched (description '{shown}', ImageType {words}); "
                           f"add a rule to {Path(self.source).name} to use it")

    def tags_to_read(self) -> list[tuple[int, int]]:
        """The b-value tags, for a header-only read (``dcmread(specific_tags=...)``)."""
        return [t.tag for t in self.b_value_tags if t.tag is not None]

    def b_value(self, ds: Any) -> tuple[float | None, str]:
        """``(b-value in s/mm², source name)`` of one DICOM header, ``(None, "")`` when none is present."""
        for spec in self.b_value_tags:
            if spec.sequence_name is not None:
                hit = spec.sequence_name.search(str(ds.get("SequenceName", "") or ""))
                if hit:
                    return float(hit.group(1)), spec.name
                continue
            element = ds.get(spec.tag) if spec.tag is not None else None
            number = _number(element.value if element is not None else None)
            if number is None:
                continue
            if spec.modulo:
                number = number % spec.modulo
            if number >= 0:
                return round(float(number), 3), spec.name
        return None, ""


def _with_spaces(texts: tuple[str, ...]) -> tuple[str, ...]:
    """The texts, then those holding ``_`` once more with ``_`` read as a space (``\b`` sees words)."""
    return tuple(texts) + tuple(t.replace("_", " ") for t in texts if "_" in t)


def default_rules_path() -> Path:
    """The packaged ``rules.yaml``."""
    return Path(__file__).with_name("rules.yaml")


def _patterns(values: Any, where: str) -> tuple[re.Pattern, ...]:
    out = []
    for v in values or []:
        try:
            out.append(re.compile(str(v), re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"{where}: pattern {v!r} is not a valid regular expression ({exc}); fix it") from None
    return tuple(out)


def _parse_rule(raw: Mapping, where: str) -> Rule:
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; a rule may have {sorted(_RULE_KEYS)}")
    sequence = str(raw.get("sequence", ""))
    if sequence not in SEQUENCES:
        raise ConfigError(f"{where}: sequence {sequence!r} must be one of {SEQUENCES}")
    has_b = raw.get("has_b_value")
    if has_b is not None and not isinstance(has_b, bool):
        raise ConfigError(f"{where}: has_b_value must be true or false, got {has_b!r}")
    return Rule(name=str(raw.get("name", sequence)), sequence=sequence,
                description=_patterns(raw.get("description"), where),
                description_none=_patterns(raw.get("description_none"), where),
                image_type_any=tuple(str(w).upper() for w in raw.get("image_type_any") or []),
                image_type_none=tuple(str(w).upper() for w in raw.get("image_type_none") or []), has_b_value=has_b)


def _parse_tag(raw: Mapping, where: str) -> BValueTag:
    if "sequence_name" in raw:
        return BValueTag(str(raw.get("name", "SequenceName")), sequence_name=_patterns([raw["sequence_name"]], where)[0])
    try:
        group, element = (int(p, 16) for p in str(raw["tag"]).replace("(", "").replace(")", "").split(","))
    except (KeyError, ValueError):
        raise ConfigError(f"{where}: needs tag: \"gggg,eeee\" (hexadecimal) or sequence_name: PATTERN, got {dict(raw)}") from None
    modulo = raw.get("modulo")
    return BValueTag(str(raw.get("name", raw["tag"])), (group, element), bool(raw.get("first_value", False)),
                     float(modulo) if modulo else None)


def load_rules(path: str | Path | None = None) -> Rules:
    """Load classification rules from ``path`` (default: the packaged ``rules.yaml``).

    Raises
    ------
    ConfigError
        Missing or unreadable file, unknown keys, bad sequence names or regular expressions.
    """
    path = Path(path) if path else default_rules_path()
    if not path.is_file():
        raise ConfigError(f"rules file {path} does not exist; pass an existing YAML (copy {default_rules_path()})")
    raw = load_yaml_file(path, what=f"rules file {path}") or {}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("rules"), list):
        raise ConfigError(f"rules file {path} must be a mapping with a 'rules' list (see {default_rules_path()})")
    rules = tuple(_parse_rule(r, f"rules file {path}, rule {i + 1}") if isinstance(r, Mapping) else
                  _parse_rule({"sequence": None}, f"rules file {path}, rule {i + 1}") for i, r in enumerate(raw["rules"]))
    tags = tuple(_parse_tag(t, f"rules file {path}, b_value_tags entry {i + 1}")
                 for i, t in enumerate(raw.get("b_value_tags") or []))
    modalities = tuple(str(m).upper() for m in raw.get("modalities") or ["MR"])
    return Rules(modalities, rules, tags, str(path))
