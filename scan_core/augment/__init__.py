"""Batched augmentations on image tensors, one random draw per image.

Images come in as float ``[B, C, H, W]`` in [0, 1]; every function takes a
``torch.Generator`` so a seed fixes the exact views. Working on whole batches (not one PIL
image at a time) keeps the CPU path fast and lets the same code run on a GPU. The colour
and histogram operations are torchvision's (``transforms.v2.functional``); geometric
operations are batched affine warps.

One module per job: ``settings`` (what may be done, conversions), ``ops`` (shared image
operations), ``simclr`` (SimCLR and weak views), ``strong`` (SCAN's strong augmentation).
Nothing is imported here, so a stage that uses SimCLR views does not load the strong ones.
"""
