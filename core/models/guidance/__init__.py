"""Guidance: feature transforms that forget what the user calls a nuisance or keep only what they call relevant.

Arrays in, arrays out, like every model: :mod:`.erasure` fits the linear transforms (LEACE
in closed form, and the relevant-only projection), :mod:`.head` trains the non-linear
nuisance head (torch), :mod:`.prompts` turns phrases embedded by a CLIP text tower into a
linear transform, :mod:`.probes` measures how much of a nuisance a representation still
holds.  The project side (named feature spaces, their scores and indexes) is
:mod:`oddscope.core.workflows.guidance`.
"""
