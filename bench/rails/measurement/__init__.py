"""The rank side of the rails test: what every rank runs (torch, the communicators, the store), in step with the
others. Imports the diagnosis and the plan, never the other way."""
