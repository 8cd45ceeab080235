"""Every partitioning of the asset graph, in one place: the assets and the sensors both import it.

A partition key is also the `part=<key>` folder of the warehouse table the asset writes. The static key
lists repeat those of the code that owns them (resources imports no pipeline code); a test holds them equal
to `datagen.curriculum.STAGES` and `evals.polyglot.exercises.LANGUAGES`.
"""

from __future__ import annotations

import dagster as dg

# Dynamic partitions: keys are added at run time (by `hrm materialize` from the assets' default keys, or
# by a sensor), so the definitions are known by name.
LCB_RELEASE = "lcb_release"  # LiveCodeBench release tags, e.g. release_v6
SWE_REPO = "swe_repos"  # repo spec keys, e.g. pypi__addict

lcb_releases = dg.DynamicPartitionsDefinition(name=LCB_RELEASE)
swe_repos = dg.DynamicPartitionsDefinition(name=SWE_REPO)

CURRICULUM_STAGES = ("1", "2", "3", "4")
POLYGLOT_LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust")

curriculum_stages = dg.StaticPartitionsDefinition(list(CURRICULUM_STAGES))
polyglot_languages = dg.StaticPartitionsDefinition(list(POLYGLOT_LANGUAGES))
