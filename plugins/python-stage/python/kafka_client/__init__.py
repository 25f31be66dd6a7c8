"""The kafka_client library's API, provided by stage-host's Python bridge.

Stage classes written for the library (subclasses of PipelineStage and SourcePipelineStage)
import from here unchanged; stage-host runs them. Constructors open no connection: they record
the topics, the group and the output topic config, which become the stage's spec.
"""


class StageStopped(BaseException):
    """Raised in a source's start() by to_output once stage-host stops the source.

    A BaseException, so a stage's own `except Exception` does not swallow it.
    """
