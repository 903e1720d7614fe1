"""Scenarios: the input format (schema, profile specs), reading files (loading), variants
(`extends:`/`overrides:`/`sweep:`), problems, and the prepared scenario every stage takes."""
