"""An instructor's JupyterLab on the class's hub: every nbgrader extension (formgrader, Create
Assignment, the course list), the course's kernel only. The hub opens it in the course folder."""

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

c.KernelSpecManager.allowed_kernelspecs = {"python3"}
