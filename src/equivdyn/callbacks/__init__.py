"""Record the training dynamics of framework-driven training runs.

Each module is an optional extra that imports its framework only when it is imported
itself (``import equivdyn.callbacks`` imports neither):

* :mod:`equivdyn.callbacks.lightning` — :class:`~equivdyn.callbacks.lightning.RecordDynamics`,
  a PyTorch Lightning callback (``pip install 'equivdyn[lightning]'``);
* :mod:`equivdyn.callbacks.hf` — :class:`~equivdyn.callbacks.hf.RecordDynamicsCallback`,
  a Hugging Face ``transformers.Trainer`` callback (``pip install 'equivdyn[hf]'``).

Both write one trajectory file ``[1, T, D]`` per training run with
:class:`equivdyn.recorder.Recorder`; read it back with :func:`equivdyn.read_trajectory`.
"""
