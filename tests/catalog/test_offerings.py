"""Offerings as the planner sees them: AWS/Azure rows as listed, GCP hosts and accelerators composed."""

from __future__ import annotations

import pytest

from polycloud.catalog import Catalog, Offering


def find(catalog: Catalog, provider: str, region: str, instance_type: str) -> Offering:
    matches = [o for o in catalog.offerings(provider, region) if o.instance_type == instance_type]
    assert len(matches) == 1, (provider, region, instance_type, matches)
    return matches[0]


def test_gcp_a2_highgpu_1g_is_host_plus_gpu(catalog: Catalog) -> None:
    o = find(catalog, "gcp", "us-central1", "a2-highgpu-1g")
    assert o.hourly_usd == pytest.approx(0.73948 + 2.93391)
    assert round(o.hourly_usd, 3) == 3.673
    assert (o.accelerator, o.accelerator_count, o.vcpus, o.memory_gib) == ("A100", 1, 12, 85)
    assert o.spot_hourly_usd is not None and o.spot_hourly_usd < o.hourly_usd


def test_gcp_n1_with_t4(catalog: Catalog) -> None:
    o = find(catalog, "gcp", "us-central1", "n1-standard-4-t4")
    host = find(catalog, "gcp", "us-central1", "n1-standard-4")
    assert (o.accelerator, o.accelerator_count) == ("T4", 1)
    assert (o.vcpus, o.memory_gib) == (host.vcpus, host.memory_gib) == (4, 15)
    assert o.hourly_usd == pytest.approx(0.54)
    assert host.accelerator is None and host.accelerator_count == 0
    two = find(catalog, "gcp", "us-central1", "n1-standard-4-t4x2")
    assert two.accelerator_count == 2 and two.hourly_usd > o.hourly_usd


def test_gcp_n1_limits(catalog: Catalog) -> None:
    names = {o.instance_type for o in catalog.offerings("gcp", "us-central1")}
    assert "n1-standard-8-v100" in names
    assert "n1-standard-16-v100" not in names  # V100 x1 allows at most 12 vCPUs
    assert "n1-standard-16-v100x2" in names
    assert "n1-standard-8-v100x8" in names
    assert not any(n.endswith("p100x8") for n in names)  # no P100 x8 row in the data


def test_gcp_fixed_hosts(catalog: Catalog) -> None:
    g2 = find(catalog, "gcp", "us-central1", "g2-standard-24")
    assert (g2.accelerator, g2.accelerator_count) == ("L4", 2)
    h100 = find(catalog, "gcp", "us-central1", "a3-highgpu-8g")
    assert (h100.accelerator, h100.accelerator_count) == ("H100", 8)
    mega = find(catalog, "gcp", "us-central1", "a3-megagpu-8g")
    assert mega.accelerator == "H100-MEGA"
    b200 = find(catalog, "gcp", "us-central1", "a4-highgpu-8g")
    assert (b200.accelerator, b200.accelerator_count) == ("B200", 8)
    assert b200.hourly_usd == pytest.approx(90.216)
    a100_80 = find(catalog, "gcp", "us-central1", "a2-ultragpu-1g")
    assert a100_80.accelerator == "A100-80GB"


def test_gcp_accelerator_hosts_never_alone(catalog: Catalog) -> None:
    for o in catalog.all_offerings():
        if o.provider == "gcp" and o.instance_type.startswith(("a2-", "a3-", "a4-", "g2-")):
            assert o.accelerator is not None and o.accelerator_count >= 1


def test_gcp_identical_variants_left_out(catalog: Catalog) -> None:
    names = {o.instance_type for o in catalog.offerings("gcp", "us-central1")}
    assert "a3-highgpu-8g" in names
    assert "a3-edgegpu-8g" not in names and "a3-ultragpu-8g-nolssd" not in names
    only_edge = {o.instance_type for o in catalog.offerings("gcp", "europe-west2")}
    assert "a3-edgegpu-8g" in only_edge


def test_gcp_tpu_standalone(catalog: Catalog) -> None:
    tpus = [o for o in catalog.all_offerings() if o.instance_type == "tpu-v5p-8"]
    assert tpus
    for o in tpus:
        assert (o.accelerator, o.accelerator_count, o.vcpus, o.memory_gib) == ("tpu-v5p-8", 1, 0, 0)


def test_gcp_spot_needs_both_rows(catalog: Catalog) -> None:
    # asia-south2 H200 x8 has no spot price: the composed offering has none either.
    o = find(catalog, "gcp", "asia-south2", "a3-ultragpu-8g")
    assert o.spot_hourly_usd is None


def test_azure_nc24ads_a100(catalog: Catalog) -> None:
    o = find(catalog, "azure", "eastus", "Standard_NC24ads_A100_v4")
    assert o.hourly_usd == pytest.approx(3.673)
    assert (o.accelerator, o.accelerator_count, o.vcpus, o.memory_gib) == ("A100-80GB", 1, 24, 220)


def test_azure_fractional_gpu(catalog: Catalog) -> None:
    o = find(catalog, "azure", "eastus", "Standard_NV6ads_A10_v5")
    assert (o.accelerator, o.accelerator_count) == ("A10", 0.167)


def test_aws_p4d_rows(catalog: Catalog) -> None:
    p4d = [o for o in catalog.all_offerings() if o.provider == "aws" and o.instance_type == "p4d.24xlarge"]
    assert len(p4d) > 5
    for o in p4d:
        assert (o.accelerator, o.accelerator_count, o.vcpus, o.memory_gib) == ("A100", 8, 96, 1152)
    tokyo = find(catalog, "aws", "ap-northeast-1", "p4d.24xlarge")
    assert (tokyo.hourly_usd, tokyo.spot_hourly_usd) == (30.09784, 13.7021)
    singapore = find(catalog, "aws", "ap-southeast-1", "p4d.24xlarge")
    assert singapore.spot_hourly_usd is None  # empty SpotPrice
    mumbai = find(catalog, "aws", "ap-south-1", "p4d.24xlarge")
    assert mumbai.spot_hourly_usd == mumbai.hourly_usd  # kept: a quoted spot price equal to on-demand


def test_aws_cpu_rows(catalog: Catalog) -> None:
    o = find(catalog, "aws", "us-east-1", "m6i.large")
    assert (o.accelerator, o.accelerator_count, o.spot_hourly_usd) == (None, 0, None)


def test_aws_fractional_gpu(catalog: Catalog) -> None:
    fractional = [o for o in catalog.all_offerings() if o.provider == "aws" and 0 < o.accelerator_count < 1]
    assert fractional and all(o.instance_type.startswith(("g6f.", "gr6f.")) for o in fractional)
