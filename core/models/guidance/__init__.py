"""Guidance: feature transforms that forget what the user calls a nuisance or keep only what they call relevant.

Arrays in, arrays out, like every model: :mod:`.erasure` fits the transforms (LEACE
in closed form, and the relevant-only projection), :mod:`.probes` measures how much
of a nuisance a representation still holds.  The project side (named feature spaces,
their scores and indexes) is :mod:`oddscope.core.workflows.guidance`.
"""
