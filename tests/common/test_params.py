"""Parameter declaration: parsing, canonical spellings, and messages naming parameter, value and allowed values."""

import pytest

from components.common.errors import InvalidParameter, ServiceError
from components.s2_preprocess.params import S2PreprocessParams


def test_seed_defaults():
    p = S2PreprocessParams()
    assert (p.resolution, p.bands, p.landseamask, p.cloudmask, p.aoi) == (10.0, ("B2", "B3", "B4", "B8"), "None", "None", None)
    assert (p.upsampling, p.downsampling, p.flagdownsampling) == ("Nearest", "First", "First")
    assert (p.projection, p.output_format) == ("UTM(Auto)", "GeoTIFF")


def test_parsing_and_canonical_spelling():
    p = S2PreprocessParams.from_strings({"bands": "B02, b8a,B11", "cloudmask": "l2a", "resolution": "60",
                                         "upsampling": "bicubic", "toa": "yes", "aoi": ""})
    assert p.bands == ("B2", "B8A", "B11")
    assert (p.cloudmask, p.resolution, p.upsampling, p.toa, p.aoi) == ("L2A", 60.0, "Bicubic", True, None)


@pytest.mark.parametrize("values, fragment", [
    ({"cloudmask": "Clouds"}, "invalid value 'Clouds' for parameter 'cloudmask': allowed one of None, L2A, L1C"),
    ({"bands": "B2,B13"}, "invalid value 'B13' for parameter 'bands': allowed one of B1, B2"),
    ({"bands": "B2,B02"}, "parameter 'bands': allowed each item at most once"),
    ({"resolution": "0"}, "parameter 'resolution': allowed a number > 0"),
    ({"resolution": "ten"}, "invalid value 'ten' for parameter 'resolution': allowed a number (float)"),
    ({"landseamask_tolerance": "-5"}, "allowed a number >= 0"),
    ({"toa": "maybe"}, "parameter 'toa': allowed true or false"),
    ({"colour": "red"}, "invalid value 'red' for parameter 'colour'"),
])
def test_invalid_values_name_parameter_value_and_allowed(values, fragment):
    with pytest.raises(InvalidParameter) as e:
        S2PreprocessParams.from_strings(values)
    assert fragment in str(e.value)
    assert isinstance(e.value, ServiceError)
    assert "\n" not in str(e.value)


def test_one_value_is_checked_against_its_declared_bounds():
    S2PreprocessParams.check("resolution", 20.0)
    S2PreprocessParams.check("aoi", None)                  # no bounds declared: nothing to check
    with pytest.raises(InvalidParameter, match="parameter 'resolution': allowed a number > 0"):
        S2PreprocessParams.check("resolution", 0.0)


def _float_fields():
    import dataclasses
    import importlib
    import typing
    from pathlib import Path

    from components.common.params import ServiceParams

    for path in sorted(Path(__file__).resolve().parents[2].glob("components/*/params.py")):
        importlib.import_module(f"components.{path.parent.name}.params")
    seen = set()
    todo = list(ServiceParams.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] is float and (cls.__name__, f.name) not in seen:
                seen.add((cls.__name__, f.name))
                yield cls, f.name


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf"])
def test_no_float_parameter_of_any_service_takes_nan_or_infinity(text):
    fields = list(_float_fields())
    assert len(fields) > 20
    for cls, name in fields:
        with pytest.raises(InvalidParameter, match=f"parameter '{name}': allowed a finite number"):
            cls.check(name, float(text))
    # through the command line's strings and through the constructor (a component's values)
    with pytest.raises(InvalidParameter, match="parameter 'resolution': allowed a finite number"):
        S2PreprocessParams.from_strings({"resolution": text})
    with pytest.raises(InvalidParameter, match="parameter 'min_valid_percent': allowed a finite number"):
        S2PreprocessParams(min_valid_percent=float(text))


def test_an_integer_beyond_64_bits_is_refused():
    from components.crop_lstm.params import TrainParams

    with pytest.raises(InvalidParameter, match="parameter 'seed': allowed an integer of at most 64 bits"):
        TrainParams.from_strings({"seed": str(2 ** 64)})
    assert TrainParams.from_strings({"seed": str(2 ** 63 - 1)}).seed == 2 ** 63 - 1


@pytest.mark.parametrize("values, fragment", [
    ({"bands": [2, 3]}, "parameter 'bands': allowed a comma-separated text or a list of texts"),
    ({"bands": 5}, "parameter 'bands': allowed a comma-separated text or a list of texts"),
    ({"resolution": 10 ** 400}, "parameter 'resolution': allowed a number (float)"),
    ({"resolution": True}, "invalid value True for parameter 'resolution': allowed a number (float)"),
    ({"min_valid_percent": [50]}, "parameter 'min_valid_percent': allowed a number (float)"),
])
def test_a_components_values_of_the_wrong_type_are_refused(values, fragment):
    """What a pipeline's JSON may hand a component that the command line cannot: numbers in a
    list of names, a huge integer, a boolean for a number."""
    with pytest.raises(InvalidParameter) as e:
        S2PreprocessParams.from_strings(values)
    assert fragment in str(e.value)


def test_an_int_parameter_takes_no_fraction():
    from components.crop_lstm.params import TrainParams

    assert TrainParams.from_strings({"n_epochs": 3.0}).n_epochs == 3
    with pytest.raises(InvalidParameter, match="invalid value 2.9 for parameter 'n_epochs': allowed a number"):
        TrainParams.from_strings({"n_epochs": 2.9})


@pytest.mark.parametrize("values", [None, ["resolution", 10]])
def test_params_that_are_no_mapping_are_refused(values):
    with pytest.raises(InvalidParameter, match="parameter 'params': allowed a mapping of parameter names"):
        S2PreprocessParams.from_strings(values)
