"""``magicmotion``: drive an existing MagicMotion installation (github.com/quanhaol/MagicMotion) per sample.

MagicMotion is CogVideoX-5B-I2V with a trajectory ControlNet: 49 frames at 480x720, 8 fps, 50 DPM steps with
CFG 6 (NFE = 2 x 50). Its `magicmotion/inference.py` reads a validation CSV (validation_prompt,
validation_images, validation_trajectory_maps, output_path, controlnet_weights, seed) and writes one mp4 per
row. For each request this generator:

1. renders the sample in MagicMotion's input format (flashbench.export.magicmotion_inputs: first frame and
   condition map stretched to 480x720, the clip mapped onto 49 frames),
2. writes the one-row CSV, the PNG and the map mp4 into a work folder,
3. runs `python magicmotion/inference.py ...` in the installation (an argument list, never a shell string)
   with the stage checkpoint of the condition (mask: ckpts/stage1/mask.pt; box / sparse_box: the stage-2 /
   stage-3 ControlNet plus its perception head and --use_perception_head, as the repo's scripts do),
4. reads the mp4 back and fits it to the sample's frames and size (flashbench.generators.videos.fit_video:
   49 -> T frames uniformly over the clip, 480x720 -> HxW).

Arguments: root (the MagicMotion clone), python (its environment's interpreter; default this one),
model_path (a local CogVideoX-5b-I2V folder or the hub id; MagicMotion's script loads the tokenizer, text
encoder, VAE and scheduler from "THUDM/CogVideoX-5b-I2V" itself, so that model must be in the Hugging Face cache
of its environment), ckpts (default root/ckpts), guidance (6.0, the script's default), controlnet_weights (1.0),
work_dir (keep every input/output/log there; default a temporary folder per sample), timeout (seconds).

denoise_seconds is the subprocess's wall time, model loading included (the script reports nothing finer);
`extra["timing"]` says so. For many samples, `flashbench export --format magicmotion` + one MagicMotion run +
the `videos` generator loads the model once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flashbench.errors import GenerationError
from flashbench.export import (
    MAGICMOTION_COLUMNS,
    MAGICMOTION_CSV,
    MAGICMOTION_FPS,
    MAGICMOTION_FRAMES,
    MAGICMOTION_SIZE,
    magicmotion_inputs,
    write_csv,
    write_png,
)
from flashbench.generators.base import CONDITIONS, GeneratedVideo, GenerationRequest

SCRIPT = "magicmotion/inference.py"
MODEL_ID = "THUDM/CogVideoX-5b-I2V"
STEPS = 50  # MagicMotionPipeline's num_inference_steps (inference.py does not expose it)
# condition -> (ControlNet, perception head or None), relative to ckpts/ (the repo's README layout)
CHECKPOINTS: dict[str, tuple[str, str | None]] = {
    "mask": ("stage1/mask.pt", None),
    "box": ("stage2/box.pt", "stage2/box_perception_head.pt"),
    "sparse_box": ("stage3/sparse_box.pt", "stage3/sparse_box_perception_head.pt"),
}
INSTALL_HINT = "git clone https://github.com/quanhaol/MagicMotion and download its ckpts (see its README)"


def inference_command(csv_path: Path, condition: str, ckpts: Path = Path("ckpts"), model_path: str = MODEL_ID,
                      guidance: float = 6.0, python: str = "python") -> list[str]:
    """The argument list of MagicMotion's inference script for `csv_path` (run it in the MagicMotion root)."""
    controlnet, head = CHECKPOINTS[condition]
    args = [python, SCRIPT, "--pretrained_model_name_or_path", str(model_path),
            "--pretrained_controlnet_path", str(ckpts / controlnet)]
    if head is not None:
        args += ["--pretrained_perception_head_path", str(ckpts / head), "--use_perception_head"]
    return args + ["--validation_args_csv", str(csv_path), "--num_validation_videos", "1",
                   "--height", str(MAGICMOTION_SIZE[0]), "--width", str(MAGICMOTION_SIZE[1]),
                   "--guidance_scale", str(float(guidance))]


class MagicMotion:
    """MagicMotion through its own inference script; see the module docstring."""

    name = "magicmotion"
    steps = STEPS

    def __init__(self, root: str, python: str | None = None, model_path: str = MODEL_ID, ckpts: str | None = None,
                 guidance: float = 6.0, controlnet_weights: float = 1.0, work_dir: str | None = None,
                 timeout: float | None = None) -> None:
        self.root = Path(root)
        if not (self.root / SCRIPT).is_file():
            raise GenerationError(f"no MagicMotion installation at {self.root} (no {SCRIPT}); {INSTALL_HINT}")
        python = os.path.expanduser(python or sys.executable)
        resolved = shutil.which(python)
        if resolved is None:
            raise GenerationError(f"python={python} is not an executable; give MagicMotion's environment "
                                  "interpreter (e.g. python=~/miniconda3/envs/magicmotion/bin/python)")
        self.python = resolved
        if model_path != MODEL_ID and not Path(model_path).is_dir():
            raise GenerationError(f"model_path={model_path} is not a folder; give a local CogVideoX-5b-I2V "
                                  f"folder or {MODEL_ID} (from the Hugging Face cache)")
        self.model_path = model_path
        self.ckpts = Path(ckpts) if ckpts is not None else self.root / "ckpts"
        if not any((self.ckpts / CHECKPOINTS[c][0]).is_file() for c in CONDITIONS):
            raise GenerationError(f"no MagicMotion checkpoints in {self.ckpts} (expected e.g. "
                                  f"{CHECKPOINTS['mask'][0]}); download them: huggingface-cli download "
                                  "quanhaol/MagicMotion --local-dir ckpts")
        self.guidance = float(guidance)
        self.controlnet_weights = float(controlnet_weights)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.timeout = None if timeout is None else float(timeout)

    @property
    def nfe(self) -> int:
        return STEPS * (2 if self.guidance > 1.0 else 1)  # the pipeline applies CFG when guidance_scale > 1

    def _checkpoints(self, condition: str) -> None:
        for rel in CHECKPOINTS[condition]:
            if rel is not None and not (self.ckpts / rel).is_file():
                raise GenerationError(f"MagicMotion checkpoint {self.ckpts / rel} for condition {condition!r} is "
                                      "missing; download it: huggingface-cli download quanhaol/MagicMotion "
                                      "--local-dir ckpts")

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        self._checkpoints(request.condition)
        if self.work_dir is not None:
            return self._run(request, self.work_dir / request.sample_id)
        with tempfile.TemporaryDirectory(prefix="magicmotion-") as tmp:
            return self._run(request, Path(tmp))

    def _run(self, request: GenerationRequest, work: Path) -> GeneratedVideo:
        from flashbench.generators.videos import fit_video
        from flashbench.video import read_video, write_video

        work = work.resolve()
        image, tmap = magicmotion_inputs(request.first_frame, request.masks, request.boxes, request.condition)
        image_path, map_path = work / "image.png", work / "trajectory.mp4"
        output = work / "output" / f"{request.sample_id}.mp4"
        output.unlink(missing_ok=True)  # the script skips rows whose output exists
        write_png(image_path, image)
        write_video(map_path, tmap, MAGICMOTION_FPS)
        row = {"validation_prompt": request.prompt, "validation_images": str(image_path),
               "validation_trajectory_maps": str(map_path), "output_path": str(output),
               "controlnet_weights": self.controlnet_weights, "seed": int(request.seed)}
        write_csv(work / MAGICMOTION_CSV, MAGICMOTION_COLUMNS, [row])
        command = inference_command(work / MAGICMOTION_CSV, request.condition, self.ckpts.resolve(),
                                    self.model_path, self.guidance, self.python)
        log = work / "inference.log"
        start = time.perf_counter()
        try:
            with open(log, "w") as log_file:
                proc = subprocess.run(command, cwd=self.root, stdout=log_file, stderr=subprocess.STDOUT,
                                      env=os.environ.copy(), timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise GenerationError(f"{request.sample_id}: MagicMotion ran over timeout={self.timeout} s") from None
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            last = lines[-1].strip() if lines else "(no output)"
            where = f"; log: {log}" if self.work_dir is not None else " (pass work_dir=DIR to keep its log)"
            raise GenerationError(f"{request.sample_id}: MagicMotion inference exited with {proc.returncode}: "
                                  f"{last[:300]}{where}")
        if not output.is_file():
            raise GenerationError(f"{request.sample_id}: MagicMotion finished but wrote no {output}")
        raw = read_video(output)
        frames, notes = fit_video(raw, request.num_frames, (request.height, request.width))
        extra = {"model_input": [MAGICMOTION_FRAMES, *MAGICMOTION_SIZE], "fitted": notes, "command": command,
                 "timing": "subprocess wall time, model loading included"}
        if raw.shape[:3] != (MAGICMOTION_FRAMES, *MAGICMOTION_SIZE):
            extra["warnings"] = [f"MagicMotion wrote {tuple(raw.shape[:3])} (T, H, W), expected "
                                 f"{(MAGICMOTION_FRAMES, *MAGICMOTION_SIZE)}"]
        return GeneratedVideo(frames=frames, nfe=self.nfe, denoise_seconds=seconds, extra=extra)
