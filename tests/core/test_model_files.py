"""Model files from strangers: TorchScript needs consent, messages say what a file really is, and a fuzz
over damaged files finds nothing but the app's one error type."""

from __future__ import annotations

import hashlib
import io
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from cnn_explorer.cli import main
from cnn_explorer.core import zoo
from cnn_explorer.core.trust import CodeTrust, TrustDecision

ASSETS = Path(__file__).resolve().parents[2] / "assets"


class FileWriter(nn.Module):
    """A 'classifier' whose scripted forward overwrites the first bytes of ``target``: code, not weights."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.head = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.target, shared=True, size=8, dtype=torch.uint8)
        mapped.fill_(65)  # writes "AAAAAAAA" into the file
        return self.head(x.mean((2, 3))) + mapped.sum().float() * 0


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    """(a TorchScript file that writes into a victim file when run, the victim)."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    path = tmp_path / "innocent_looking.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(FileWriter(str(victim)).eval()).save(str(path))
    return path, victim


def test_torchscript_is_not_run_without_consent(hostile):
    path, victim = hostile
    with pytest.raises(zoo.UntrustedCodeError) as err:
        zoo.load_model_file(path)
    assert err.value.path == path
    assert err.value.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "innocent_looking.pt" in str(err.value) and "TorchScript" in str(err.value)
    assert "--trust-code" in str(err.value)
    with pytest.raises(zoo.UntrustedCodeError):
        zoo.load_model("lenet5", weights_file=path)
    assert victim.read_bytes() == b"precious"
    assert zoo.sniff_model_file(path) is zoo.ModelFileKind.TORCHSCRIPT

    # With consent it really runs, which is the point of asking.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = zoo.load_model_file(path, trust_code=True)
    assert loaded.num_classes == 5
    assert victim.read_bytes() == b"AAAAAAAA"


def test_torchscript_inside_a_checkpoint_reader_is_refused_too(hostile):
    path, victim = hostile
    with pytest.raises(zoo.ModelLoadError, match="TorchScript program"):
        zoo.read_checkpoint(path)
    assert victim.read_bytes() == b"precious"


def test_cli_refuses_torchscript_without_trust_code(hostile, tmp_path, capsys, sample_cat):
    path, victim = hostile
    assert main(["inspect", str(sample_cat), "--weights", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "TorchScript" in err and "--trust-code" in err and "Traceback" not in err
    assert main(["predict", str(path), str(sample_cat)]) == 2
    assert "--trust-code" in capsys.readouterr().err
    assert victim.read_bytes() == b"precious"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert main(["predict", str(path), str(sample_cat), "--trust-code"]) == 0
    assert "class 0" in capsys.readouterr().out
    assert victim.read_bytes() == b"AAAAAAAA"


def test_weights_only_formats_need_no_consent(tmp_path):
    sd = zoo.LeNet5().state_dict()
    torch.save(sd, tmp_path / "w.pth")
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("w.pth", "w.safetensors", "legacy.pt"):
        assert zoo.load_model_file(tmp_path / name).info.name == "lenet5"


def test_trust_store_remembers_by_content(tmp_path):
    trust = CodeTrust(tmp_path / "t.json")
    assert trust.decision("ab" * 32) is TrustDecision.UNKNOWN
    trust.remember("ab" * 32, TrustDecision.TRUSTED, "m.pt")
    trust.remember("cd" * 32, TrustDecision.REFUSED, "n.pt")
    again = CodeTrust(tmp_path / "t.json")
    assert again.decision("ab" * 32) is TrustDecision.TRUSTED
    assert again.decision("cd" * 32) is TrustDecision.REFUSED
    (tmp_path / "t.json").write_text("{ damaged")
    assert CodeTrust(tmp_path / "t.json").decision("ab" * 32) is TrustDecision.UNKNOWN


# --- messages that tell the truth -------------------------------------------------------------------------


def _message(path: Path) -> str:
    with pytest.raises(zoo.ModelLoadError) as err:
        zoo.load_model_file(path)
    return str(err.value)


def test_random_bytes_are_not_called_a_pickle(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("random.pt", "random.pth", "random.bin"):
        (tmp_path / name).write_bytes(rng.bytes(4096)[1:])  # [1:]: not starting with a pickle opcode
        text = _message(tmp_path / name)
        assert name in text and "not a PyTorch file" in text and "pickle" not in text.split(":", 1)[1][:40]
        assert "pickled Python object" not in text


def test_a_non_safetensors_file_named_safetensors_says_so(tmp_path):
    (tmp_path / "notes.safetensors").write_text("my notes about the model\n")
    text = _message(tmp_path / "notes.safetensors")
    assert "not a safetensors file" in text and "text file" in text and "pickled" not in text
    (tmp_path / "noise.safetensors").write_bytes(np.random.default_rng(1).bytes(2048))
    assert "not a safetensors file" in _message(tmp_path / "noise.safetensors")
    # A real PyTorch file with the wrong name opens by what it is.
    torch.save(zoo.LeNet5().state_dict(), tmp_path / "really_torch.safetensors")
    assert zoo.load_model_file(tmp_path / "really_torch.safetensors").info.name == "lenet5"


def test_each_kind_of_wrong_file_is_named(tmp_path):
    torch.save(zoo.LeNet5().state_dict(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert "damaged zip archive" in _message(tmp_path / "cut.pt")

    with zipfile.ZipFile(tmp_path / "photos.pt", "w") as zf:
        zf.writestr("holiday.txt", "not a model")
    assert "zip archive, but not a PyTorch file" in _message(tmp_path / "photos.pt")

    (tmp_path / "folder.pt").mkdir()
    assert "folder" in _message(tmp_path / "folder.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert "empty" in _message(tmp_path / "empty.pt")
    assert "does not exist" in _message(tmp_path / "missing.pt")

    Image.new("RGB", (4, 4)).save(tmp_path / "picture.pt", format="PNG")
    assert "an image, not a model file" in _message(tmp_path / "picture.pt")
    (tmp_path / "keras.pt").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert "HDF5" in _message(tmp_path / "keras.pt")

    safe = tmp_path / "w.safetensors"
    save_file(zoo.LeNet5().state_dict(), str(safe))
    raw = safe.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) - 100])
    assert "damaged safetensors file" in _message(tmp_path / "cut.safetensors")

    torch.save(zoo.LeNet5(), tmp_path / "whole.pt")  # a genuine pickled object is still named as one
    assert "pickled Python object" in _message(tmp_path / "whole.pt")


# --- a fuzz over the model loader ---------------------------------------------------------------------


def _valid_model_files(folder: Path) -> list[Path]:
    model = zoo.LeNet5(num_classes=4).eval()
    sd = model.state_dict()
    torch.save(sd, folder / "sd.pt")
    torch.save(sd, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file(sd, str(folder / "sd.safetensors"))
    zoo.save_checkpoint(
        folder / "ckpt.pt", model, arch="lenet5", class_names=list("abcd"), preprocess=zoo.LENET5_PREPROCESS
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, torch.zeros(1, 1, 32, 32)).save(str(folder / "traced.pt"))
    return sorted(folder.iterdir())


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_fuzz_damaged_model_files_raise_only_model_load_error(tmp_path):
    """Random truncations, byte flips and splices: each file loads or raises ModelLoadError, nothing else."""
    sources = [(p.suffix, p.read_bytes()) for p in _valid_model_files(tmp_path)]
    rng = np.random.default_rng(20261201)
    case = tmp_path / "case"
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + 15.0
    n = 0
    while n < 3000 and (n < 300 or time.monotonic() < deadline):
        suffix, original = sources[n % len(sources)]
        data = bytearray(original)
        how = int(rng.integers(3))
        if how == 0:
            data = data[: int(rng.integers(len(data)))]
        elif how == 1:
            for _ in range(int(rng.integers(1, 9))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
        else:
            at = int(rng.integers(len(data)))
            data[at : at + int(rng.integers(1, 64))] = rng.bytes(int(rng.integers(1, 64)))
        path = case.with_suffix(suffix)
        path.write_bytes(bytes(data))
        try:
            zoo.load_model_file(path, trust_code=bool(n % 2))
            outcomes["loaded"] = outcomes.get("loaded", 0) + 1
        except zoo.ModelLoadError as exc:
            assert path.name in str(exc)
            outcomes["refused"] = outcomes.get("refused", 0) + 1
        n += 1
    assert n >= 300 and outcomes.get("refused", 0) > 0


def test_bytes_loaded_from_memory_are_sniffed_like_files(tmp_path):
    buf = io.BytesIO()
    torch.save({"a": torch.zeros(2)}, buf)
    (tmp_path / "x").write_bytes(buf.getvalue())
    assert zoo.sniff_model_file(tmp_path / "x") is zoo.ModelFileKind.TORCH_ZIP


def test_consent_holds_for_the_bytes_agreed_to_not_the_path(hostile):
    path, victim = hostile
    with pytest.raises(zoo.UntrustedCodeError) as asked:
        zoo.load_model_file(path)
    with pytest.raises(zoo.UntrustedCodeError):
        zoo.load_model_file(path, trusted_sha256="0" * 64)  # someone else's yes
    assert victim.read_bytes() == b"precious"
    with open(path, "ab") as fh:  # the file changes after the user said yes to what it was
        fh.write(b"\0")
    with pytest.raises(zoo.UntrustedCodeError) as again:
        zoo.load_model_file(path, trusted_sha256=asked.value.sha256)
    assert again.value.sha256 != asked.value.sha256 and victim.read_bytes() == b"precious"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        zoo.load_model_file(path, trusted_sha256=again.value.sha256)  # yes to these bytes: they run
    assert victim.read_bytes() == b"AAAAAAAA"
