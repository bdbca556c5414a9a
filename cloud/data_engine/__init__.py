"""The instruction data engine (``earshot instruct``): annotations -> context
graph -> vision-only and joint audio-visual narrations -> closed-form QA in the
EgoAVU-Bench categories, with exact scoring.

Modules: ``records`` (the QA record and output layout: the contract),
``graph`` (context graph and views), ``narration``, ``qa`` (windows, questions,
answers), ``engine`` (dataset in, QA folder out), ``scoring``, ``verbs``.
See docs/data_engine.md.
"""
