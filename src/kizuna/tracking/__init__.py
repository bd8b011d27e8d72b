"""Engagement tracking: SendGrid's signed Event Webhook, the append-only event store, and the warehouse loader."""
