"""S2-CD parameters: the seed's Table 6 flags and defaults, parsing, and one-line messages."""

from __future__ import annotations

import pytest

from components.common.errors import InvalidParameter
from components.s2_change_detection.cli import main
from components.s2_change_detection.params import S2ChangeParams

TABLE_6_FLAGS = ("--input1", "--input2", "--bands", "--AoI", "--resolution", "--projection", "--numberClasses",
                 "--referenceVector", "--levelConfidence", "--output_format", "--output_path")


def test_help_lists_every_table_6_parameter(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in TABLE_6_FLAGS:
        assert flag in text, flag
    assert "(default: B2,B3,B4,B8)" in text and "(default: 99.99)" in text and "(default: 4)" in text


def test_defaults():
    p = S2ChangeParams()
    assert (p.resolution, p.bands, p.aoi, p.projection) == (10.0, ("B2", "B3", "B4", "B8"), None, "UTM(Auto)")
    assert (p.numberClasses, p.referenceVector, p.levelConfidence, p.output_format) == (4, (), 99.99, "GeoTIFF")
    assert p.reference == (1.0, 0.0, 0.0, 0.0)
    assert S2ChangeParams(bands=("B2", "B3", "B4", "B8", "B11", "B12")).reference == (1.0, 0, 0, 0, 0, 0)


def test_parsing():
    p = S2ChangeParams.from_strings({"bands": "B02,b8a,B11", "referenceVector": "0, 1,1", "numberClasses": "6",
                                     "levelConfidence": "99.9", "noise_model": "diagonal", "aoi": ""})
    assert p.bands == ("B2", "B8A", "B11") and p.reference == (0.0, 1.0, 1.0)
    assert (p.numberClasses, p.levelConfidence, p.noise_model, p.aoi) == (6, 99.9, "Diagonal", None)


@pytest.mark.parametrize("values, fragment", [
    ({"levelConfidence": "100"}, "invalid value 100.0 for parameter 'levelConfidence': allowed a number > 0 and < 100"),
    ({"levelConfidence": "0"}, "parameter 'levelConfidence'"),
    ({"levelConfidence": "99,99"}, "invalid value '99,99' for parameter 'levelConfidence': allowed a number"),
    ({"numberClasses": "0"}, "parameter 'numberClasses': allowed a number >= 1"),
    ({"numberClasses": "255"}, "parameter 'numberClasses': allowed a number >= 1 and <= 254"),
    ({"numberClasses": "2.5"}, "parameter 'numberClasses': allowed a number (int)"),
    ({"referenceVector": "1,0"}, "parameter 'referenceVector': allowed 4 values, one per band (B2,B3,B4,B8)"),
    ({"referenceVector": "0,0,0,0"}, "allowed finite numbers, not all zero"),
    ({"referenceVector": "1,a,0,0"}, "allowed comma-separated numbers"),
    ({"bands": "B2,B13"}, "invalid value 'B13' for parameter 'bands'"),
    ({"filter_size": "4"}, "parameter 'filter_size': allowed an odd number"),
    ({"min_area": "0"}, "parameter 'min_area'"),
    ({"noise_model": "full"}, "allowed one of Covariance, Diagonal"),
    ({"cloud_classes": "3,12"}, "parameter 'cloud_classes'"),
])
def test_invalid_values_name_parameter_value_and_allowed(values, fragment):
    with pytest.raises(InvalidParameter) as e:
        S2ChangeParams.from_strings(values)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
