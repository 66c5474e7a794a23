"""The model runtime: any valid ONNX model loads and is described; bad files are PermanentErrors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from polycloud.errors import PermanentError
from polycloud.serving import TensorInfo, inspect_model, load_model
from polycloud.serving.onnxtypes import output_plan, parse_type

Matmul = tuple[Path, "np.ndarray[Any, Any]", "np.ndarray[Any, Any]"]


def test_matmul_model_metadata_has_a_dynamic_batch(matmul: Matmul) -> None:
    matmul_path = matmul[0]
    info = inspect_model(matmul_path)
    assert info.inputs == (TensorInfo("x", "FP32", (-1, 3)),)
    assert info.outputs == (TensorInfo("y", "FP32", (-1, 2)),)
    assert info.sha256 == hashlib.sha256(matmul_path.read_bytes()).hexdigest()


def test_matmul_model_computes(matmul: Matmul) -> None:
    path, weights, bias = matmul
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    [y] = load_model(path).run({"x": x})
    assert y.name == "y" and y.datatype == "FP32"
    np.testing.assert_allclose(y.array, x @ weights + bias)


def test_int64_model_metadata(int64_path: Path) -> None:
    info = inspect_model(int64_path)
    assert info.inputs == (TensorInfo("ids", "INT64", (-1,)), TensorInfo("offset", "INT64", (1,)))
    assert info.outputs == (TensorInfo("shifted", "INT64", (-1,)),)


def test_string_model_is_bytes(strings_path: Path) -> None:
    model = load_model(strings_path)
    assert model.info.inputs[0].datatype == "BYTES"
    [out] = model.run({"words": np.array(["a", "bc"], dtype=object)})
    assert out.datatype == "BYTES" and out.array.tolist() == ["a", "bc"]


def test_example_models_take_input_fp32(iris_path: Path, cancer_path: Path) -> None:
    for path, features, classes in ((iris_path, 4, 3), (cancer_path, 30, 2)):
        info = inspect_model(path)
        assert info.inputs == (TensorInfo("input", "FP32", (-1, features)),)
        assert info.outputs == (
            TensorInfo("label", "INT64", (-1,)),
            TensorInfo("probabilities", "FP32", (-1, classes)),
        )


def test_example_checksums_match_the_files(iris_path: Path) -> None:
    sums = (iris_path.parent / "SHA256SUMS").read_text().split()
    listed = dict(zip(sums[1::2], sums[0::2], strict=True))
    assert set(listed) == {"iris.onnx", "cancer.onnx"}
    for name, digest in listed.items():
        assert inspect_model(iris_path.parent / name, digest).sha256 == digest


def test_iris_onnx_predicts_like_scikit_learn(iris_path: Path, train_module: ModuleType) -> None:
    trained = train_module.train_iris()
    x = load_iris().data.astype(np.float32)
    label, probabilities = load_model(iris_path).run({"input": x})
    np.testing.assert_array_equal(label.array, trained.estimator.predict(x))
    np.testing.assert_allclose(probabilities.array, trained.estimator.predict_proba(x), atol=1e-5)


def test_zipmap_classifier_output_is_served_as_a_tensor(tmp_path: Path) -> None:
    data = load_iris()
    x = data.data.astype(np.float32)
    names = np.array(["setosa", "versicolor", "virginica"])[data.target]
    estimator = LogisticRegression(max_iter=1000).fit(x, names)
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(to_onnx(estimator, x[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString())
    model = load_model(path)
    probability = model.info.output("output_probability")
    assert probability is not None
    assert (probability.datatype, probability.shape) == ("FP32", (-1, -1))
    assert "seq(map(string,tensor(float)))" in probability.note
    label, probs = model.run({"X": x[:5]})
    assert label.datatype == "BYTES" and label.array.tolist() == estimator.predict(x[:5]).tolist()
    assert probs.keys == ["setosa", "versicolor", "virginica"]
    np.testing.assert_allclose(probs.array, estimator.predict_proba(x[:5]), atol=1e-5)


def test_run_selects_outputs(iris_path: Path) -> None:
    [probabilities] = load_model(iris_path).run({"input": np.zeros((1, 4), np.float32)}, ["probabilities"])
    assert probabilities.name == "probabilities" and probabilities.array.shape == (1, 3)


def test_run_reports_inputs_the_graph_refuses_as_value_error(matmul: Matmul) -> None:
    with pytest.raises(ValueError):
        load_model(matmul[0]).run({"x": np.zeros((2, 4), np.float32)})


def test_sha256_is_checked_case_insensitively(iris_path: Path) -> None:
    digest = hashlib.sha256(iris_path.read_bytes()).hexdigest()
    assert inspect_model(iris_path, digest.upper()).sha256 == digest


def test_sha256_mismatch_is_permanent(iris_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"iris\.onnx: sha256 mismatch: expected 0{64}, file has"):
        inspect_model(iris_path, "0" * 64)


def test_malformed_sha256_is_permanent(iris_path: Path) -> None:
    with pytest.raises(PermanentError, match="not 64 hexadecimal digits"):
        inspect_model(iris_path, "abc")


def test_missing_file_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"missing\.onnx: file not found"):
        inspect_model(tmp_path / "missing.onnx")


def test_directory_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="is a directory"):
        inspect_model(tmp_path)


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_corrupt_file_is_permanent(tmp_path: Path, iris_path: Path, kind: str) -> None:
    content = {"empty": b"", "text": b"this is not a protobuf", "truncated": iris_path.read_bytes()[:200]}
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(content[kind])
    with pytest.raises(PermanentError, match=r"corrupt\.onnx: not a valid ONNX model") as caught:
        inspect_model(path)
    assert "\n" not in str(caught.value)


def test_type_strings_parse() -> None:
    assert str(parse_type("seq(map(int64,tensor(float)))")) == "seq(map(int64,tensor(float)))"
    assert str(parse_type("optional(seq(tensor(double)))")) == "optional(seq(tensor(double)))"
    with pytest.raises(PermanentError):
        parse_type("seq(tensor(float)")


def test_output_plans_convert_non_tensor_values() -> None:
    maps = output_plan("seq(map(int64,tensor(double)))", "p")
    assert (maps.datatype, maps.shape) == ("FP64", (-1, -1))
    assert maps.convert([{2: 0.5, 0: 0.25}, {0: 1.0, 2: 0.0}]).tolist() == [[0.25, 0.5], [1.0, 0.0]]
    one_map = output_plan("map(string,tensor(float))", "m")
    assert one_map.convert({"b": 2.0, "a": 1.0}).tolist() == [1.0, 2.0]
    stacked = output_plan("seq(tensor(int32))", "s")
    assert stacked.convert([np.array([1, 2]), np.array([3, 4])]).tolist() == [[1, 2], [3, 4]]
    optional = output_plan("optional(tensor(float))", "o")
    assert optional.convert(None).shape == (0,)


def test_unservable_outputs_are_refused() -> None:
    for type_text in ("sparse_tensor(float)", "tensor(bfloat16)", "seq(seq(tensor(float)))"):
        with pytest.raises(PermanentError, match="output 'x'"):
            output_plan(type_text, "x")
    with pytest.raises(PermanentError, match="different keys"):
        output_plan("seq(map(int64,tensor(float)))", "x").convert([{0: 1.0}, {1: 1.0}])
