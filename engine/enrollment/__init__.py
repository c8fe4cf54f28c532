"""Enrollment from one guided minute: reading scripts, take quality gates, slicing, speaker checks.

The engine side of issue #13. Everything here works on bytes and arrays and knows nothing of
storage, jobs or HTTP; the service layer calls it through ``worker/pipeline.py``.

- :mod:`engine.enrollment.scripts`: the shipped reading scripts, phone coverage, the consent text.
- :mod:`engine.enrollment.decode`: bounded decoding of an uploaded take.
- :mod:`engine.enrollment.quality`: the quality report and its gates (:func:`analyse_take`).
- :mod:`engine.enrollment.slicing`: takes -> 3-10 s clips aligned to sentences; reference selection.
- :mod:`engine.enrollment.verify`: same-speaker checks for consent, several-speaker refusal, A/B.
- :mod:`engine.enrollment.calibrate`: threshold calibration (EER) on generated espeak-ng speakers.
"""
