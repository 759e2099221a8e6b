"""The built-in synthetic crowd dataset, written in the CrowdHuman layout and schema.

    from crowdet.data.synth import generate_dataset, dataset_exists, PRESETS
    summary = generate_dataset("data/synth", num_train=1500, num_val=300, preset="demo")

Modules: presets (crowd statistics), scene (camera, placement, depth order), person (silhouettes),
clutter (occluders, distractors, far crowds), background, draw (sprites), render (one image and
its boxes), worker (one image file), generate (the dataset writer), stats (summary statistics).
"""

from crowdet.data.synth.generate import dataset_exists, generate_dataset
from crowdet.data.synth.presets import PRESETS, SynthPreset

__all__ = ["PRESETS", "SynthPreset", "dataset_exists", "generate_dataset"]
