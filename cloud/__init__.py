"""Earshot cloud package: the instruction data engine (``cloud.data_engine``,
``earshot instruct``), the AV-LM teacher and the reasoning server.

cloud/ imports only ``shared`` (never ``sim``): datasets are read through
``shared.dataset`` and annotations through ``shared.recording``.
"""
