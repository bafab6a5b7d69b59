"""WTForms classes built from definitions, and the choice of which fields a visitor is asked.

Progressive profiling: a known visitor is not asked what the site already knows. Fields whose
answer is known are left out; of the profiling questions still unanswered, the next
`max_profiling_fields` are shown. The names shown are signed into the form's token, so the
server validates exactly what the visitor saw, even if the contact changed in between.
"""
from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pycountry
from wtforms import (
    BooleanField,
    DecimalField,
    Form,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    validators,
    widgets,
)
from wtforms.fields.choices import SelectChoice

from engine.forms.definitions import FieldDef, FormDef

TEXT_TYPES = ("email", "text", "textarea", "phone", "hidden")
PHONE = re.compile(r"^\+?[0-9][0-9 ().\-/]{4,29}$")


@lru_cache(maxsize=1)
def countries() -> tuple[SelectChoice, ...]:
    return tuple(SelectChoice(c.alpha_2, c.name)
                 for c in sorted(pycountry.countries, key=lambda c: c.name))


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _no_line_breaks(form: Form, field: Any) -> None:
    if isinstance(field.data, str) and ("\r" in field.data or "\n" in field.data):
        raise validators.ValidationError("Line breaks are not allowed here.")


def _phone(form: Form, field: Any) -> None:
    if field.data and not PHONE.match(field.data.strip()):
        raise validators.ValidationError("Enter a phone number, digits with an optional +.")


MAX_DIGITS = 15


def _ordinary_number(form: Form, field: Any) -> None:
    """Numbers people type: finite, under a quadrillion, at most 6 decimals. `1e1000000` is a
    valid Decimal too, and turning it into an int would take the worker minutes of CPU."""
    value = field.data
    if value is None:
        return
    # Read from the digits, without arithmetic: that would round (28 digits) or overflow.
    if not value.is_finite() or value.adjusted() >= MAX_DIGITS or _decimals(value) > 6:
        raise validators.StopValidation("Enter an ordinary number (at most 15 digits before "
                                        "the point and 6 after).")


def _decimals(value: Decimal) -> int:
    """Digits after the point, trailing zeros left out (`1.500` has 1)."""
    _, digits, exponent = value.as_tuple()
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(int(exponent) + trailing))


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def wtforms_field(spec: FieldDef) -> Any:
    # DataRequired for text (blank after trimming is no answer), InputRequired elsewhere (0 is one)
    needed = validators.DataRequired if spec.type in TEXT_TYPES else validators.InputRequired
    required = needed(message="This field is required.") if spec.required else validators.Optional()
    common: dict[str, Any] = {"label": spec.label, "description": spec.help}
    single = [_no_line_breaks] if spec.single_line else []
    length = validators.Length(max=spec.max_length,
                               message=f"Keep it under {spec.max_length} characters.")
    choices = [SelectChoice(c.value, c.label) for c in spec.choices]
    if spec.type == "email":
        return StringField(validators=[required, length, *single], filters=[_strip], **common)
    if spec.type in ("text", "hidden"):
        cls = HiddenField if spec.type == "hidden" else StringField
        return cls(validators=[required, length, *single], filters=[_strip],
                   default=spec.default or None, **common)
    if spec.type == "textarea":
        return TextAreaField(validators=[required, length], filters=[_strip], **common)
    if spec.type == "phone":
        return StringField(validators=[required, validators.Length(max=40), _no_line_breaks,
                                       _phone], filters=[_strip], **common)
    if spec.type == "number":
        bounds = validators.NumberRange(
            min=None if spec.min is None else Decimal(str(spec.min)),
            max=None if spec.max is None else Decimal(str(spec.max)))
        return DecimalField(validators=[required, _ordinary_number, bounds], **common)
    if spec.type == "select":
        return SelectField(choices=[SelectChoice("", "Choose…"), *choices], validate_choice=False,
                           validators=[required, _in(choices)], **common)
    if spec.type == "radio":
        return RadioField(choices=choices, validate_choice=False,
                          validators=[required, _in(choices)], **common)
    if spec.type == "checkboxes":
        return MultiCheckboxField(choices=choices, validate_choice=False,
                                  validators=[required, _in(choices)], **common)
    if spec.type == "country":
        return SelectField(choices=[SelectChoice("", "Choose…"), *countries()],
                           validate_choice=False, validators=[required, _in(countries())], **common)
    if spec.type == "consent":
        checks = [validators.InputRequired(message="Please tick this box to continue.")] \
            if spec.required else [validators.Optional()]
        return BooleanField(validators=checks, **common)
    raise ValueError(f"unknown field type {spec.type}")


def _in(choices: Any) -> Any:
    """A select's value must be one offered (the empty placeholder means no answer)."""
    allowed = {choice.value for choice in choices}

    def check(form: Form, field: Any) -> None:
        values = field.data if isinstance(field.data, list) else [field.data]
        if any(v not in ("", None) and v not in allowed for v in values):
            raise validators.StopValidation("Choose one of the options offered.")
    return check


def form_class(definition: FormDef, shown: list[str] | tuple[str, ...]) -> type[Form]:
    """A WTForms class with the fields in `shown`, in the definition's order.

    Classes are kept per definition and set of fields (definitions are frozen, so an edited
    form is a different key): every render and every POST needs one, and building it (fields,
    validators, the country list) costs more than validating a submission.
    """
    return _form_class(definition, tuple(shown))


@lru_cache(maxsize=256)
def _form_class(definition: FormDef, shown: tuple[str, ...]) -> type[Form]:
    attrs = {spec.name: wtforms_field(spec) for spec in definition.fields if spec.name in shown}
    return type(f"{definition.slug.title().replace('-', '')}Form", (Form,), attrs)


def fields_to_show(definition: FormDef, known: dict[str, Any]) -> list[str]:
    """Which fields to ask, given what is known about the visitor (empty dict: a stranger)."""
    shown, unanswered_profiling = [], []
    for spec in definition.fields:
        is_known = spec.maps_to in known and spec.type != "hidden"
        if spec.profiling:
            if not is_known:
                unanswered_profiling.append(spec.name)
            continue
        if not is_known:
            shown.append(spec.name)
    allowed = set(shown) | set(unanswered_profiling[:definition.max_profiling_fields])
    return [spec.name for spec in definition.fields if spec.name in allowed]
