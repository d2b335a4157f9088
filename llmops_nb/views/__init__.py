"""Views: a service object -> the plain JSON-able data that every face renders.

One module per thing (`evals`, `traces`, `prompts`): the notebook panel, its static
HTML fallback, the sidebar's endpoints and the report all show the same view, so
their numbers agree. Views read services; services never import views.
"""
