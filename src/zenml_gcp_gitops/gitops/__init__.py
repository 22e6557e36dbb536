"""GitOps with Argo CD: render the app-of-apps from `argocd/`, bootstrap it, wait, tear down."""
