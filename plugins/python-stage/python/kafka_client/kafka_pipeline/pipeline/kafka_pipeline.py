"""The library's pipelines. Under stage-host a pipeline is a pipeline file run by the
supervisor (`stage-host pipeline run pipeline.toml`), which starts each stage once the one
before it is ready; these classes can be built (scripts do so at import time) but not
started."""
from abc import ABC, abstractmethod
from typing import Callable, List

from .pipeline_stage import PipelineStage  # noqa: F401  (the library imports it here too)


class KafkaPipeline(ABC):
    def __init__(self, pipeline_name: str, stages: list):
        self._stages = stages
        self._name = pipeline_name

    @abstractmethod
    def start(self):
        pass


class MultiProcessPipeline(KafkaPipeline):
    def __init__(self, pipeline_name: str, stage_factories: List[Callable], delay_between_starts=1):
        self._processess = []
        self._delay = delay_between_starts
        super().__init__(pipeline_name, stage_factories)

    def start(self):
        raise RuntimeError(
            "MultiProcessPipeline.start() is not available under stage-host: list the stages "
            "in a pipeline file and run `stage-host pipeline run pipeline.toml`"
        )


class DockerPipeline(KafkaPipeline):
    def __init__(self, pipeline_name: str, stages: List[str], docker_sock_path: str):
        super().__init__(pipeline_name, stages)

    def start(self):
        raise RuntimeError(
            "DockerPipeline.start() is not available under stage-host: run one stage-host "
            "per container (see the repository's deploy/)"
        )
