"""osm-features: vector data of human features from OpenStreetMap (seed D5.2 section 2.2.6)."""
