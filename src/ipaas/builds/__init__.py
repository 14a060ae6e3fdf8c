"""Image builder: fetch the repo, detect the language, plan, build with the Docker engine."""
