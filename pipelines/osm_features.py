"""``osm_features``: human features from OpenStreetMap for an AoI, extracted and stored."""

from kfp import dsl

from components.osm_features.component import osm_features as extract_features
from components.osm_features.component import store_product


@dsl.pipeline(name="osm-features", description="Extract the features of the chosen classes in an "
              "AoI from an OSM extract with osm-features (GeoJSON or GeoPackage + STAC item + "
              "quicklook), then store the product in a folder or s3:// prefix.")
def osm_features(
    input_uri: str,
    features: str = "all",
    aoi: str = "",
    format: str = "geojson",
    clip: bool = False,
    dictionary: str = "",
    destination: str = "",
):
    extract = extract_features(input_uri=input_uri, features=features, aoi=aoi, format=format,
                               clip=clip, dictionary=dictionary)
    extract.set_display_name("osm-features")
    extract.set_cpu_limit("2").set_memory_request("1Gi").set_memory_limit("4Gi")
    extract.set_retry(1)
    store = store_product(product=extract.outputs["product"], destination=destination)
    store.set_display_name("store")
    store.set_cpu_limit("1").set_memory_limit("1Gi")
