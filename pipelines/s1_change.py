"""``s1_change``: a Sentinel-1 SLC pair to coherence, backscatters, ACD/MTC composites and a change mask."""

from kfp import dsl

from components.s1_change_detection.component import s1_change_detection


@dsl.pipeline(name="s1-change", description="S1-CD on an SLC pair (URIs of the same track, 6 x n days apart): "
              "coherence, backscatter of both dates, ACD and MTC RGBs and a change mask as COGs.")
def s1_change(
    input1: str,
    input2: str,
    polarization: str = "VV",
    calibration: str = "Sigma",
    speckle: str = "Lee Sigma",
    aoi: str = "",
    resolution: float = 0.0,
    subswaths: str = "IW1,IW2,IW3",
    coherence_window_rg: int = 10,
    coherence_window_az: int = 10,
    percentile_low: float = 2.5,
    percentile_high: float = 97.5,
    change_db: float = 3.0,
    change_coherence: float = 0.5,
    landseamask: str = "None",
    projection: str = "WGS84",
    output_format: str = "GeoTIFF",
):
    task = s1_change_detection(
        input1_uri=input1, input2_uri=input2, polarization=polarization, calibration=calibration, speckle=speckle,
        aoi=aoi, resolution=resolution, subswaths=subswaths, coherence_window_rg=coherence_window_rg,
        coherence_window_az=coherence_window_az, percentile_low=percentile_low, percentile_high=percentile_high,
        change_db=change_db, change_coherence=change_coherence, landseamask=landseamask, projection=projection,
        output_format=output_format)
    task.set_display_name("S1-CD")
    task.set_cpu_limit("2").set_memory_request("4Gi").set_memory_limit("8Gi")
    task.set_retry(1)
