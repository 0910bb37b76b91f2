"""ONNX models as black-box targets, and exporting advlab models to ONNX.

An ONNX file queried through :class:`OnnxTarget` takes float32 images in [0, 1], shape
(N, C, H, W): its graph must include the normalization, as every advlab model does and
as :func:`export_onnx` writes it. onnxruntime is an optional dependency
(``pip install onnxruntime``); exporting also needs ``onnx`` and ``onnxscript``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.errors import AdvlabError, check
from advlab.targets.base import OutputKind, Target

log = logging.getLogger(__name__)

# Metadata keys export_onnx writes so that OnnxTarget can describe the model.
META_NAME = "advlab.name"
META_CLASS_NAMES = "advlab.class_names"


def _require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AdvlabError(
            f"{purpose} needs the '{module}' package: pip install 'advlab[onnx]' "
            f"(or pip install {module})"
        ) from None


def _looks_like_probabilities(outputs: np.ndarray) -> bool:
    """True when every row is a probability vector (non-negative, sums to 1)."""
    if outputs.size == 0:
        return True
    if float(outputs.min()) < 0.0:
        return False
    return bool(np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))


def _in_unit_range(outputs: np.ndarray) -> bool:
    return bool(outputs.min() >= -1e-5 and outputs.max() <= 1 + 1e-5)


class OnnxTarget(Target):
    """An ONNX classifier queried on the CPU through onnxruntime.

    ``input_shape`` (C, H, W) and ``num_classes`` are read from the graph when it states
    them, and must be given when it does not. Logit outputs are turned into
    probabilities with a softmax; ``softmax=None`` decides from the outputs (rows that
    are non-negative and sum to 1 are taken as probabilities), ``True``/``False`` forces it;
    with ``False`` the outputs are used as they are and must lie in [0, 1].
    A graph with a fixed batch size is fed in chunks of that size.
    """

    def __init__(
        self,
        path: str | Path,
        output: OutputKind = "scores",
        input_shape: tuple[int, int, int] | None = None,
        num_classes: int | None = None,
        *,
        softmax: bool | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        check(output in ("scores", "labels"), f"unknown output '{output}': use scores or labels")
        ort = _require("onnxruntime", "OnnxTarget")
        self.path = Path(path).expanduser()
        check(self.path.is_file(), f"ONNX file not found: {self.path}; check the path")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise AdvlabError(
                f"{self.path} is not a valid ONNX model ({first_line[:200]}): "
                "re-export it, e.g. with advlab.targets.export_onnx"
            ) from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        check(len(inputs) == 1,
              f"{self.path} has {len(inputs)} inputs; OnnxTarget needs a graph with one image "
              "input")  # fmt: skip
        self._input_name = inputs[0].name
        graph_shape = list(inputs[0].shape)
        check(len(graph_shape) == 4,
              f"{self.path} takes inputs of rank {len(graph_shape)}; OnnxTarget needs images "
              "of shape (N, C, H, W)")  # fmt: skip
        self._fixed_batch = graph_shape[0] if isinstance(graph_shape[0], int) else None
        self.input_shape = self._resolve_shape(graph_shape[1:], input_shape)
        out_shape = list(outputs[0].shape)
        graph_classes = out_shape[-1] if out_shape and isinstance(out_shape[-1], int) else None
        if num_classes is not None and graph_classes is not None:
            check(num_classes == graph_classes,
                  f"num_classes={num_classes} but {self.path} outputs {graph_classes} classes; "
                  "drop the argument")  # fmt: skip
        self.num_classes = int(num_classes or graph_classes or 0)
        check(self.num_classes > 0,
              f"{self.path} does not state its number of classes: pass num_classes")  # fmt: skip
        self.output = output
        self._softmax = softmax
        meta = self._session.get_modelmeta().custom_metadata_map
        self.name = meta.get(META_NAME) or self.path.stem
        names = meta.get(META_CLASS_NAMES)
        self.class_names = names.split("\n") if names else [str(i) for i in range(self.num_classes)]

    def _resolve_shape(
        self, graph: list[Any], given: tuple[int, int, int] | None
    ) -> tuple[int, ...]:
        if given is not None:
            shape = tuple(int(v) for v in given)
            check(len(shape) == 3, f"input_shape must be (C, H, W), got {shape}")
            for axis, (want, have) in enumerate(zip(graph, shape, strict=True)):
                check(not isinstance(want, int) or want == have,
                      f"input_shape {shape} disagrees with the graph's {tuple(graph)} on axis "
                      f"{axis + 1}: drop the argument or fix it")  # fmt: skip
            return shape
        check(all(isinstance(v, int) for v in graph),
              f"{self.path} has a dynamic image size {tuple(graph)}: "
              "pass input_shape=(C, H, W)")  # fmt: skip
        return tuple(int(v) for v in graph)

    def _run(self, images: torch.Tensor) -> np.ndarray:
        check(images.dim() == 4 and tuple(images.shape[1:]) == self.input_shape,
              f"images have shape {tuple(images.shape)} but {self.path.name} expects "
              f"(N, {', '.join(map(str, self.input_shape))})")  # fmt: skip
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        if self._fixed_batch is None:
            return self._session.run(None, {self._input_name: array})[0]
        # A graph exported with batch size B: feed chunks of B, padding the last one.
        size, chunks = self._fixed_batch, []
        for start in range(0, array.shape[0], size):
            chunk = array[start : start + size]
            filled = chunk.shape[0]
            if filled < size:
                pad = np.zeros((size - filled, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            chunks.append(self._session.run(None, {self._input_name: chunk})[0][:filled])
        return np.concatenate(chunks) if chunks else np.zeros((0, self.num_classes), np.float32)

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        outputs = np.asarray(self._run(images), dtype=np.float32).reshape(images.shape[0], -1)
        if not bool(np.isfinite(outputs).all()):
            raise AdvlabError(f"{self.path} returned NaN or infinite outputs: check the model")
        if self._softmax is None and not _looks_like_probabilities(outputs):
            # Sticky: once a batch proves the outputs are logits, every later batch is too.
            self._softmax = True
        if self._softmax is False and outputs.size and not _in_unit_range(outputs):
            raise AdvlabError(
                f"{self.path} was declared to output scores (softmax=False) but returned "
                f"values in {outputs.min():.3g}..{outputs.max():.3g}, outside [0, 1]: "
                "pass softmax=True (or leave it None) for a graph that outputs logits"
            )
        scores = torch.from_numpy(outputs)
        return torch.softmax(scores, dim=1) if self._softmax else scores


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_shape: tuple[int, int, int] | None = None,
    opset: int | None = None,
) -> Path:
    """Write ``model`` (images in [0, 1] in, logits out) as an ONNX file and return its path.

    The graph includes the model's normalization and has a dynamic batch axis; its input
    is ``images`` (float32, N x C x H x W) and its output ``logits``. The model's name and
    class names go into the file's metadata for :class:`OnnxTarget`. Needs ``onnx`` and
    ``onnxscript`` (``pip install 'advlab[onnx]'``).
    """
    _require("onnx", "export_onnx")
    _require("onnxscript", "export_onnx")
    shape = input_shape or getattr(model, "input_shape", None)
    check(shape is not None and len(tuple(shape)) == 3,
          "export_onnx needs the model's input shape: pass input_shape=(C, H, W)")  # fmt: skip
    assert shape is not None
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    # Batch of 2, not 1: the exporter would specialize a batch of 1 into a constant.
    example = torch.rand(2, *(int(v) for v in shape), device=device)
    was_training = model.training
    model.eval()
    try:
        program = torch.onnx.export(
            model,
            (example,),
            None,
            input_names=["images"],
            output_names=["logits"],
            dynamo=True,
            verbose=False,
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
            opset_version=opset,
        )
    finally:
        model.train(was_training)
    assert program is not None
    metadata = program.model.metadata_props
    metadata[META_NAME] = str(getattr(model, "name", type(model).__name__))
    class_names = getattr(model, "class_names", None)
    if class_names:
        metadata[META_CLASS_NAMES] = "\n".join(str(name) for name in class_names)
    program.save(str(path))
    log.info("exported %s to %s", metadata[META_NAME], path)
    return path
