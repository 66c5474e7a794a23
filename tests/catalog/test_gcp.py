"""GCP composition rules on hand-made rows: fixed hosts, N1 limits, names, spot sums, variants."""

from __future__ import annotations

import pytest

from polycloud.catalog.gcp import Attachment, fixed_attachment, gcp_offerings, n1_fits, n1_name
from polycloud.catalog.rows import VmRow


def host(name: str, vcpus: float, mem: float, price: float, spot: float | None, region: str = "r1") -> VmRow:
    return VmRow(name, None, 0.0, vcpus, mem, price, spot, region)


def gpus(name: str, count: float, price: float, spot: float | None, region: str = "r1") -> VmRow:
    return VmRow(None, name, count, 0.0, 0.0, price, spot, region)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a2-highgpu-1g", Attachment("A100", 1)),
        ("a2-highgpu-8g", Attachment("A100", 8)),
        ("a2-megagpu-16g", Attachment("A100", 16)),
        ("a2-ultragpu-4g", Attachment("A100-80GB", 4)),
        ("a3-highgpu-2g", Attachment("H100", 2)),
        ("a3-edgegpu-8g-nolssd", Attachment("H100", 8)),
        ("a3-megagpu-8g", Attachment("H100-MEGA", 8)),
        ("a3-ultragpu-8g", Attachment("H200", 8)),
        ("a4-highgpu-8g", Attachment("B200", 8)),
        ("g2-standard-4", Attachment("L4", 1)),
        ("g2-standard-32", Attachment("L4", 1)),
        ("g2-standard-24", Attachment("L4", 2)),
        ("g2-standard-48", Attachment("L4", 4)),
        ("g2-standard-96", Attachment("L4", 8)),
        ("g2-standard-6", None),
        ("n1-standard-4", None),
        ("n2-standard-8", None),
        ("z9-weirdgpu-8g", None),
    ],
)
def test_fixed_attachment(name: str, expected: Attachment | None) -> None:
    assert fixed_attachment(name) == expected


def test_n1_limits_and_names() -> None:
    small, big = host("n1-standard-8", 8, 30, 0.38, None), host("n1-highmem-16", 16, 104, 0.9, None)
    assert n1_fits(small, "V100", 1) and not n1_fits(big, "V100", 1)
    assert n1_fits(big, "V100", 2) and n1_fits(big, "P100", 1)
    assert not n1_fits(small, "V100", 3) and not n1_fits(small, "L4", 1) and not n1_fits(small, "T4", 8)
    assert n1_name("n1-standard-4", "T4", 1) == "n1-standard-4-t4"
    assert n1_name("n1-standard-8", "V100", 2) == "n1-standard-8-v100x2"


def test_composition_sums_prices_and_spot() -> None:
    rows = [
        host("a2-highgpu-1g", 12, 85, 0.73948, 0.2),
        gpus("A100", 1, 2.93391, 1.0),
        host("n1-standard-4", 4, 15, 0.19, None),
        gpus("T4", 1, 0.35, 0.1),
        gpus("T4", 2, 0.7, 0.2),
        gpus("A100", 2, 5.8, 2.0),  # no a2-highgpu-2g host in r1: dropped
        host("g2-standard-8", 8, 32, 0.8, 0.3),  # no L4 row in r1: dropped
        gpus("tpu-v5p-8", 1, 8.4, 3.0),
    ]
    got = {o.instance_type: o for o in gcp_offerings(rows)}
    assert set(got) == {
        "a2-highgpu-1g",
        "n1-standard-4",
        "n1-standard-4-t4",
        "n1-standard-4-t4x2",
        "tpu-v5p-8",
    }
    a2 = got["a2-highgpu-1g"]
    assert (a2.hourly_usd, a2.spot_hourly_usd) == (3.67339, 1.2)
    assert (a2.accelerator, a2.accelerator_count, a2.vcpus, a2.memory_gib) == ("A100", 1, 12, 85)
    t4 = got["n1-standard-4-t4"]
    assert (t4.hourly_usd, t4.spot_hourly_usd) == (0.54, None)  # host has no spot price
    cpu = got["n1-standard-4"]
    assert (cpu.accelerator, cpu.accelerator_count, cpu.hourly_usd) == (None, 0, 0.19)
    tpu = got["tpu-v5p-8"]
    assert (tpu.accelerator, tpu.accelerator_count, tpu.hourly_usd) == ("tpu-v5p-8", 1, 8.4)


def test_composition_stays_within_region() -> None:
    rows = [host("a2-highgpu-1g", 12, 85, 0.7, 0.2, "r1"), gpus("A100", 1, 2.9, 1.0, "r2")]
    assert gcp_offerings(rows) == []


def test_identical_variants_collapse_to_standard_type() -> None:
    rows = [
        host("a3-edgegpu-8g", 208, 1872, 9.46, 3.8),
        host("a3-highgpu-8g-nolssd", 208, 1872, 9.46, 3.8),
        host("a3-highgpu-8g", 208, 1872, 9.46, 3.8),
        gpus("H100", 8, 33.6, 32.0),
        host("a3-edgegpu-8g", 208, 1872, 9.0, 3.8, "r2"),
        host("a3-highgpu-8g", 208, 1872, 9.46, 3.8, "r2"),
        gpus("H100", 8, 33.6, 32.0, "r2"),
    ]
    names = sorted((o.region, o.instance_type) for o in gcp_offerings(rows))
    assert names == [("r1", "a3-highgpu-8g"), ("r2", "a3-edgegpu-8g"), ("r2", "a3-highgpu-8g")]
