"""The template studio: a local page where marketers render templates for real customers and send themselves a copy."""
