"""The distillation tests' session fixtures (tests/helpers/distill_world.py): a small world, a
tiny teacher, tiny distillation runs of both students and their exports."""
from tests.helpers.distill_world import (av_export, av_run, mlflow_env, teacher_dir, trigger_export,  # noqa: F401
                                         trigger_run, world)
