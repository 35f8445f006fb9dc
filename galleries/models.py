"""Galleries, assets, ratings, folders and selections arrive with the galleries issue."""
