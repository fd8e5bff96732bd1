"""The TimeSen2Crop dataset specifics (seed D5.2 section 3.2.2, Table 8): bands, pixel conditions,
crop-type legend, tiles and agronomic year. Shared by the whole crop-type chain."""

from __future__ import annotations

# Spectral bands of every sample, in the archive's column order (10 m, surface reflectance x 10000).
BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")
BAND_WAVELENGTH_NM = {"B2": 490, "B3": 560, "B4": 665, "B5": 705, "B6": 740, "B7": 783, "B8A": 865,
                      "B11": 1610, "B12": 2190}

# Pixel condition, the last column of every sample CSV.
CONDITIONS = {0: "clear", 1: "cloud", 2: "shadow", 3: "snow"}
CLEAR = 0

# Crop types: the classification scheme of Table 8 (class id -> name).
CLASSES = {
    0: "Legumes", 1: "Grassland", 2: "Maize", 3: "Potato", 4: "Sunflower", 5: "Soy",
    6: "Winter Barley", 7: "Winter Caraway", 8: "Rye", 9: "Rapeseed", 10: "Beet",
    11: "Spring Cereals", 12: "Winter Wheat", 13: "Winter Triticale", 14: "Permanent Plantations",
    15: "Other Crops",
}

# Colour of each class in crop maps (RGB).
COLOURS = {
    0: (230, 159, 0), 1: (120, 200, 80), 2: (255, 215, 0), 3: (160, 82, 45), 4: (255, 140, 0),
    5: (154, 205, 50), 6: (135, 206, 235), 7: (186, 85, 211), 8: (100, 149, 237), 9: (255, 255, 102),
    10: (220, 20, 60), 11: (244, 164, 96), 12: (210, 180, 140), 13: (70, 130, 180), 14: (34, 139, 34),
    15: (128, 128, 128),
}

# Sentinel-2 tiles of the archive (Table 8).
TILES = ("32TNT", "32TPT", "32TQT", "33TUM", "33TUN", "33TVM", "33TVN", "33TWM", "33TWN", "33TXN",
         "33UUP", "33UVP", "33UWP", "33UWQ", "33UXP")

# The agronomic year runs from September of season_start to August of the next year (12 months).
SEASON_START_YEAR = 2017
SEASON_FIRST_MONTH = 9
MONTHS_PER_SEASON = 12


def season_months(season_start: int) -> list[str]:
    """``["2017-09", "2017-10", ..., "2018-08"]`` for ``season_start=2017``."""
    out = []
    for i in range(MONTHS_PER_SEASON):
        month0 = SEASON_FIRST_MONTH - 1 + i
        out.append(f"{season_start + month0 // 12:04d}-{month0 % 12 + 1:02d}")
    return out


def month_index(year, month, season_start: int):
    """Position 0..11 of a calendar month in the season (out-of-season values fall outside 0..11).
    Works element-wise on NumPy arrays."""
    return (year - season_start) * 12 + month - SEASON_FIRST_MONTH


def class_name(class_id: int) -> str:
    return CLASSES.get(int(class_id), f"class {int(class_id)}")


def normalise_band(name: str) -> str:
    """``B02`` -> ``B2``, ``b8a`` -> ``B8A``; other names upper-cased."""
    text = str(name).strip().strip('"').strip("'").upper()
    if len(text) >= 2 and text[0] == "B" and text[1:].isdigit():
        return f"B{int(text[1:])}"
    if text in ("B08A", "B8A"):
        return "B8A"
    return text
