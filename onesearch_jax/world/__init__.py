"""The simulated e-commerce world: a data source with hidden truth (latent intents, the true click
model) that only world building, evaluation and the A/B simulator read."""
