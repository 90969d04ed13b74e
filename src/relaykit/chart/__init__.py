"""`--format helm`: a Helm chart rendered from the profile (render.py); the static parts
of the chart are package data in files/."""
