"""``osm_features``: human features from OpenStreetMap for an AoI, extracted and stored."""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.osm_features.component import osm_features as extract_features
from components.osm_features.component import store_product
from pipelines.cluster import step


# Not "osm-features", the name of its extraction component: kfp reads a compiled pipeline named
# like one of its components back as that one component (components.load_component_from_file).
@dsl.pipeline(name="osm-human-features", description="Extract the features of the chosen classes in an "
              "AoI from an OSM extract with osm-features (GeoJSON or GeoPackage + STAC item + "
              "quicklook), then store the product in a folder or s3:// prefix.")
@pipeline_params(extract_features)
def osm_features(input_uri: str, destination: str = "", *, params):
    extract = extract_features(input_uri=input_uri, **params.of(extract_features))
    step(extract, "osm-features", cpu="2", memory=("1Gi", "4Gi"))
    store = store_product(product=extract.outputs["product"], destination=destination)
    step(store, "store", cpu="1", memory=("256Mi", "1Gi"))
