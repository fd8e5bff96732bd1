"""Checked values of product metadata (XML: ElementTree or lxml elements).

A product's metadata is input like any other: an element holding text where a number or a date
belongs, a quantification value of 0, a LUT with NaN, must end the run with one line naming the
file, the element and the value, before any pixel is processed::

    v = XmlValues(root, "MTD_MSIL2A.xml", product_name)
    q = v.number("BOA_QUANTIFICATION_VALUE", positive=True)
    t = v.time("PRODUCT_START_TIME")
    lut = v.numbers("sigmaNought", el=vector_el, positive=True)

Elements are found with ``within.find(tag)`` (a path relative to ``within``) or, without
``within``, as the first ``tag`` anywhere below the root; or given as ``el``. Attribute values are
given as ``value=``.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np

from .errors import ServiceError

SHOWN_CHARS = 60
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?")


def shown(value) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


class XmlValues:
    """Checked values of one metadata file: every error names the file, the element and the value."""

    def __init__(self, root, file: str, product: str | None = None):
        self.root, self.file, self.product = root, file, product

    @property
    def where(self) -> str:
        return f"{self.file} of {self.product}" if self.product else self.file

    def error(self, tag: str, value, problem: str) -> ServiceError:
        return ServiceError(f"{self.where}: {_name(tag)} {shown(value)!r} {problem}")

    def missing(self, tag: str) -> ServiceError:
        return ServiceError(f"{self.where}: element {_name(tag)} is missing or empty")

    def find(self, tag: str, within=None):
        """``tag`` below ``within`` (a path relative to it), else anywhere below the root."""
        return within.find(tag) if within is not None else self.root.find(f".//{tag}")

    # -- single values ---------------------------------------------------------------------------

    def text(self, tag: str, required: bool = True, *, el=None, within=None, value: str | None = None) -> str | None:
        """The stripped text of ``el``, of ``value``, or of the first element ``tag`` below
        ``within``; None (or an error if ``required``) when absent or empty."""
        if value is None:
            if el is None:
                el = self.find(tag, within)
            value = el.text if el is not None and el.text is not None else ""
        value = value.strip()
        if not value:
            if required:
                raise self.missing(tag)
            return None
        return value

    def number(self, tag: str, required: bool = True, *, el=None, within=None, value: str | None = None,
               positive: bool = False, minimum: float | None = None, maximum: float | None = None) -> float | None:
        """A finite number (> 0 with ``positive``; within [minimum, maximum] when given)."""
        text = self.text(tag, required, el=el, within=within, value=value)
        if text is None:
            return None
        try:
            x = float(text)
        except ValueError:
            raise self.error(tag, text, "is not a number") from None
        if not math.isfinite(x) or (positive and x <= 0):
            raise self.error(tag, text, "must be a finite number" + (" > 0" if positive else ""))
        if (minimum is not None and x < minimum) or (maximum is not None and x > maximum):
            raise self.error(tag, text, f"is out of range ({_range(minimum, maximum)})")
        return x

    def integer(self, tag: str, required: bool = True, *, el=None, within=None, value: str | None = None,
                minimum: int | None = None, maximum: int | None = None) -> int | None:
        """A whole number within [minimum, maximum]."""
        text = self.text(tag, required, el=el, within=within, value=value)
        if text is None:
            return None
        try:
            n = int(text)
        except ValueError:
            raise self.error(tag, text, "is not a whole number") from None
        if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
            raise self.error(tag, text, f"is out of range ({_range(minimum, maximum)})")
        return n

    def time(self, tag: str, required: bool = True, *, el=None, within=None,
             value: str | None = None) -> dt.datetime | None:
        """An ISO 8601 date and time (UTC when it names no zone), as an aware datetime."""
        text = self.text(tag, required, el=el, within=within, value=value)
        if text is None:
            return None
        t = None
        if _ISO_TIME.fullmatch(text):
            try:
                t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                t = None
        if t is None:
            raise self.error(tag, text, "is not a UTC date and time (such as 2022-10-05T11:54:11.024Z)")
        return t if t.tzinfo is not None else t.replace(tzinfo=dt.timezone.utc)

    def time64(self, tag: str, required: bool = True, *, el=None, within=None,
               value: str | None = None) -> np.datetime64 | None:
        """As :meth:`time`, as ``numpy.datetime64[ns]`` (UTC, no zone) with the full fraction."""
        text = self.text(tag, required, el=el, within=within, value=value)
        if text is None:
            return None
        t = self.time(tag, value=text)
        naive = re.sub(r"(Z|[+-]\d{2}:?\d{2})$", "", text).replace(" ", "T")
        if t.utcoffset():
            return np.datetime64(t.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(), "ns")
        return np.datetime64(naive, "ns")

    # -- lists -----------------------------------------------------------------------------------

    def numbers(self, tag: str, *, el=None, within=None, value: str | None = None, integer: bool = False,
                positive: bool = False, nonnegative: bool = False, count: int | None = None) -> np.ndarray:
        """A space-separated list of finite numbers (whole with ``integer``), not empty, of
        ``count`` items when given (also checked against a ``count`` attribute of the element)."""
        if value is None and el is None:
            el = self.find(tag, within)
        text = self.text(tag, el=el, value=value)
        tokens = text.split()
        try:
            values = np.array([int(t) for t in tokens] if integer else [float(t) for t in tokens],
                              dtype=np.int64 if integer else np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _parses(t, integer))
            raise self.error(tag, bad, "is not a whole number" if integer else "is not a number") from None
        if not integer and not np.isfinite(values).all():
            raise self.error(tag, tokens[int(np.flatnonzero(~np.isfinite(values))[0])], "must be a finite number")
        low = (values <= 0) if positive else (values < 0) if nonnegative else None
        if low is not None and low.any():
            raise self.error(tag, tokens[int(np.flatnonzero(low)[0])],
                             "must be a number > 0" if positive else "must be a number >= 0")
        declared = el.get("count") if el is not None else None
        if declared is not None and declared.strip().isdigit() and int(declared) != values.size:
            raise self.error(tag, shown(text), f"has {values.size} values where its count attribute says {declared}")
        if count is not None and values.size != count:
            raise self.error(tag, shown(text), f"has {values.size} values, {count} expected")
        return values


def _name(tag: str) -> str:
    """A tag as written in messages: without namespaces."""
    return re.sub(r"\{[^}]*\}", "", tag)


def _parses(token: str, integer: bool) -> bool:
    try:
        int(token) if integer else float(token)
        return True
    except ValueError:
        return False


def _range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum:g} to {maximum:g}"
    return f">= {minimum:g}" if minimum is not None else f"<= {maximum:g}"
