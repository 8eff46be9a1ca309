"""The docker backend: a Plan -> a Dockerfile (pure render) -> an image, smoke-tested in a fresh container.

- backend.py: DockerBackend (build, smoke-test, then tag), and the one place the user's pip settings and the
  Dockerfile template are read for the pure parts;
- render.py: the Dockerfile's text from the Plan and settings already resolved (pure);
- context.py: the build context (wheelhouse, CA bundle and index settings as secrets, smoke scripts);
- lock.py: the image's lock (pylock.toml) and its SBOM;
- engine.py: DockerEngine, the adapter behind the Engine ABC (fwsetup.backends.engine); streams.py its
  deadlines and bounded reads, buildlog.py the build output it parses, buildx.py the buildx CLI it runs;
- imageregistry.py: pushing images and manifest lists to a registry.

Import each name from the module that defines it: this package re-exports nothing.
"""
