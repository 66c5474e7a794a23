"""Tests of the durable state store (`polycloud.state`)."""
