"""Datasets: download, verify and prepare the data that the experiments train on."""
