"""haulage.deploy — creating the cloud resources and the Flex Template (see deploy/README.md)."""

__all__: list[str] = []
