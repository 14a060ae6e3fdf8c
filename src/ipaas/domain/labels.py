"""Labels that mark every container, image, network and volume as the platform's (and whose)."""

LABEL_PLATFORM = "org.ipaas.platform"
LABEL_APP = "org.ipaas.app"
LABEL_APP_NAME = "org.ipaas.app-name"
LABEL_OWNER = "org.ipaas.owner"
LABEL_RELEASE = "org.ipaas.release"
# The id of the store that started the container: only its own store may remove it.
LABEL_STORE = "org.ipaas.store"

# App images are tagged `ipaas/<app name>-<app id>:<tag>` (releases `r<n>`, earlier build
# stages `stage-<n>`); the id makes the repository the app's alone.
IMAGE_NAMESPACE = "ipaas"


def image_repository(app_name: str, app_id: str) -> str:
    """The repository of an app's images. The id is part of it, so an app created later under
    the same name never finds (or builds on) the images of the app that had it before."""
    return f"{IMAGE_NAMESPACE}/{app_name}-{app_id}"


def in_app_repository(tag: str, app_id: str) -> bool:
    """Whether an image tag (`repository:tag`) is in the repository of the app `app_id`."""
    repository = tag.rsplit(":", 1)[0]
    return repository.startswith(f"{IMAGE_NAMESPACE}/") and repository.endswith(f"-{app_id}")
