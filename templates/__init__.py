"""The email templates (Jinja2, `*.j2`): package data, so an installed lakemail can render its emails."""
