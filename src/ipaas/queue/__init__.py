"""Build queue: the durable job table (default) or RabbitMQ for builders on other machines."""
