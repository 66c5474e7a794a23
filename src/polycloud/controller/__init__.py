"""The controller: drives every cluster towards the declared state and keeps it there."""
