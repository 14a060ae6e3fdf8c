"""Labels that mark every container, image, network and volume as the platform's (and whose)."""

LABEL_PLATFORM = "org.ipaas.platform"
LABEL_APP = "org.ipaas.app"
LABEL_APP_NAME = "org.ipaas.app-name"
LABEL_OWNER = "org.ipaas.owner"
LABEL_RELEASE = "org.ipaas.release"
# The id of the store that started the container: only its own store may remove it.
LABEL_STORE = "org.ipaas.store"
