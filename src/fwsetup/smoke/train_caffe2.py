"""fwsetup smoke test for Caffe2 (the `caffe2.python` API of PyTorch 1.10, its last release with it): a
two-layer net built with `brew.fc`, a SquaredL2Distance + AveragedLoss loss, gradient operators from
`AddGradientOperators` and the update from `optimizer.build_sgd`, run as Caffe2 nets in a workspace on
generated data.

The net computes the loss before it applies the update, so the first run's loss is the loss before training
and the loss of run steps + 1 is the loss after `steps` updates.
--device cuda needs the CUDA build's GPU extension (caffe2_pybind11_state_gpu) and a GPU Caffe2 can use;
--all-gpus is refused (Caffe2's data_parallel_model is not part of this test).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h

BATCH, FEATURES, HIDDEN = 64, 8, 16


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:  # noqa: BLE001 - a report without the version still says what trained
        return "unknown"


def train(opts: h.Options, result: dict) -> None:
    h.require(not opts.all_gpus, "--all-gpus: this smoke test trains on one device (no data_parallel_model)")
    h.require(opts.device in ("cpu", "cuda"), f"Caffe2 has no {opts.device} support")
    os.environ.setdefault("GLOG_minloglevel", "2")
    t = h.Timer()
    import numpy as np
    from caffe2.proto import caffe2_pb2
    from caffe2.python import brew, core, model_helper, optimizer, workspace

    result["import_seconds"] = t.lap()
    result["version"] = _version()
    if opts.device == "cuda":
        gpus = workspace.NumCudaDevices() if workspace.has_cuda_support else 0
        h.require(
            gpus > 0,
            "--gpu asked, but Caffe2 sees no CUDA device (no GPU extension loaded, or the driver/GPU is not "
            "one the CUDA 10.2 build supports)",
        )
        device = core.DeviceOption(caffe2_pb2.CUDA, 0)
    else:
        device = core.DeviceOption(caffe2_pb2.CPU)
    device.random_seed = opts.seed  # the fillers' (XavierFill) seed: the same run gives the same losses
    rng = np.random.RandomState(opts.seed)
    x = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    w_true = np.random.RandomState(7).standard_normal((FEATURES, 1)).astype(np.float32)
    y = np.tanh(x @ w_true).astype(np.float32)

    workspace.ResetWorkspace()
    model = model_helper.ModelHelper(name="fwsetup_smoke", arg_scope={"order": "NCHW"})
    with core.DeviceScope(device):
        hidden = brew.fc(model, "data", "hidden", dim_in=FEATURES, dim_out=HIDDEN)
        hidden = brew.tanh(model, hidden, "hidden_tanh")
        out = brew.fc(model, hidden, "out", dim_in=HIDDEN, dim_out=1)
        dist = model.net.SquaredL2Distance([out, "label"], "dist")
        loss = model.net.AveragedLoss(dist, "loss")
        model.AddGradientOperators([loss])
        optimizer.build_sgd(model, base_learning_rate=0.1, policy="fixed", momentum=0.9)
    workspace.FeedBlob("data", x, device_option=device)
    workspace.FeedBlob("label", y, device_option=device)
    workspace.RunNetOnce(model.param_init_net)
    workspace.CreateNet(model.net)
    losses = []
    for _ in range(opts.steps + 1):
        workspace.RunNet(model.net)
        losses.append(float(workspace.FetchBlob("loss")))
    params = sum(int(workspace.FetchBlob(str(p)).size) for p in model.params)
    result.update(
        device="cuda:0" if opts.device == "cuda" else "cpu",
        devices=1,
        steps=opts.steps,
        loss_before=losses[0],
        loss_after=losses[-1],
        parameters=params,
        optimizer="optimizer.build_sgd (momentum 0.9)",
        operators=len(model.net.Proto().op),
        seconds=t.lap(),
    )


if __name__ == "__main__":
    h.main("caffe2", train)
