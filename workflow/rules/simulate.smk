if SIM and SIM["session"] in PLANS:

    rule simulate:
        output:
            videos=expand(
                "results/{session}/simulate/{camera}.mp4",
                session=SIM["session"],
                camera=session_cameras(SIM["session"]),
            ),
            calibration=f"results/{SIM['session']}/simulate/calibration.toml",
            gt3d=f"results/{SIM['session']}/simulate/gt3d.csv",
            gt2d=expand(
                "results/{session}/simulate/gt/{camera}.txt",
                session=SIM["session"],
                camera=session_cameras(SIM["session"]),
            ),
        log:
            f"logs/{SIM['session']}/simulate.log",
        threads: 4
        params:
            simulate=SIM,
            cameras=session_cameras(SIM["session"]),
        script:
            "../scripts/simulate.py"
